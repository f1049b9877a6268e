import type { Hl7Segment } from '@medplum/core';
import { Hl7Message } from '@medplum/core';
import type { Encounter, Identifier, Patient, Practitioner, Reference, ServiceRequest, Specimen } from '@medplum/fhirtypes';
import type { MappingConfig, MappingContext } from '../context.ts';
import { US_SSN } from '../segments/pid.ts';
import {
  conceptToCwe,
  hasIdentifierType,
  humanNameToXpn,
  identifierToCx,
  identifierToEi,
  identifierTypeCode,
  practitionerToXcn,
  replyContext,
} from './datatypes.ts';
import type { Field, Repetition, SegmentFields } from './encode.ts';
import { OUTBOUND_CONTEXT, buildSegment, fhirToDtm, isFhirInstant, one, text } from './encode.ts';

/** The order message types the hub sends. */
export type LabOrderMessageType = 'ORM^O01' | 'OML^O21';

/** An application at a facility (MSH-3/4, MSH-5/6), as namespace ids. */
export interface Hl7Endpoint {
  readonly application: string;
  readonly facility: string;
}

/** Everything one outbound lab order message is built from. */
export interface LabOrderInput {
  readonly serviceRequest: ServiceRequest;
  readonly patient: Patient;
  readonly encounter?: Encounter;
  /** The ordering provider (ORC-12, OBR-16). */
  readonly requester?: Practitioner;
  /** Specimens collected for the order (OML^O21 SPM segments; ORM^O01 has no SPM and ignores them). */
  readonly specimens?: readonly Specimen[];
  readonly messageType: LabOrderMessageType;
  readonly sending: Hl7Endpoint;
  readonly receiving: Hl7Endpoint;
  /** MSH-10. */
  readonly controlId: string;
  /** MSH-7 (and ORC-9 of a cancel or change): a FHIR instant. */
  readonly now: string;
  /** NamingSystems: identifier systems → assigning authorities. */
  readonly config: MappingConfig;
  /**
   * The order was sent before and this message replaces it (ORC-1 `XO`). A ServiceRequest does not
   * record what a receiver has already been sent; the caller (which keeps the delivery record)
   * does. Ignored for a revoked order, which is always a cancel (`CA`).
   */
  readonly isChange?: boolean;
  /** The hub's placer order number system, for a placer identifier sent without type PLAC. */
  readonly placerSystem?: string;
  /** PV1-2 when there is no Encounter: `U` (unknown, the default) or `O` (outpatient). */
  readonly defaultPatientClass?: 'O' | 'U';
  /** MSH-11 processing id (default `P`, production). */
  readonly processingId?: 'P' | 'T' | 'D';
}

/** A built message, or why none was built (texts name FHIR elements, never their values). */
export type LabOrderResult = { readonly message: string; readonly controlId: string } | { readonly errors: string[] };

/** HL7 v2 version written in MSH-12. */
const VERSION = '2.5.1';

/** Message structure (MSH-9.3) of each message type. */
const STRUCTURE: Record<LabOrderMessageType, string> = { 'ORM^O01': 'ORM_O01', 'OML^O21': 'OML_O21' };

/** FHIR request-priority → table 0485 (the inverse of the inbound TQ1-9 / TQ.6 map). */
const PRIORITY: Record<NonNullable<ServiceRequest['priority']>, string> = { stat: 'S', asap: 'A', routine: 'R', urgent: 'T' };

/** FHIR administrative gender → table 0001. */
const SEX: Record<NonNullable<Patient['gender']>, string> = { male: 'M', female: 'F', other: 'O', unknown: 'U' };

const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';

/** Encounter.class (v3 ActCode) → table 0004 patient class (the inverse of the inbound PV1-2 map). */
const PATIENT_CLASS: Record<string, string> = { EMER: 'E', IMP: 'I', ACUTE: 'I', NONAC: 'I', AMB: 'O', PRENC: 'P' };

const BIRTH_TIME = 'http://hl7.org/fhir/StructureDefinition/patient-birthTime';

/** ORC-1 order control codes the hub sends. */
type OrderControl = 'NW' | 'XO' | 'CA';

/**
 * FHIR ServiceRequest (+ Patient, Encounter, requester, Specimens) → HL7 v2.5.1 ORM^O01 or
 * OML^O21 lab order: the inverse of the inbound order map (`../messages/orders.ts`), so that the
 * order read back (by the hub, or a result the lab sends for it) is keyed like the
 * ServiceRequest it came from: same placer number system, same test code system, same patient
 * identifiers.
 *
 * ORC-1 comes from the status: `active` → `NW` (or `XO` with `isChange`), `revoked` → `CA`;
 * every other status (draft, on-hold, completed...) is refused. Segments:
 * - MSH: v2.5.1, MSH-9 with its structure (ORM_O01, OML_O21), MSH-7 `now`, MSH-10 the control id.
 * - PID: PID-3 the identifiers an assigning authority can name (MRN first; SSN and driver's
 *   licence, which the inbound map reads from PID-19/20 and never matches by, are not sent),
 *   PID-5 names, PID-7 birth date (with the birthTime extension's time), PID-8 sex.
 * - PV1: PV1-2 patient class from Encounter.class (`U` unknown; `defaultPatientClass` without an
 *   Encounter), PV1-19 the visit number.
 * - ORC: 2/3 placer (type PLAC) and filler (type FILL) numbers, 4 requisition, 9 the transaction
 *   time (authoredOn for a new order, as the inbound map reads it back; `now` for a cancel or
 *   change), 12 ordering provider.
 * - TQ1 (OML) or OBR-27 (ORM, whose v2.5.1 structure has no TQ1): priority and occurrence.
 * - OBR: 2/3 the same numbers, 4 the code (CWE, LN for LOINC), 7 occurrence (else authoredOn),
 *   16 ordering provider, 31 reasons; then one NTE per note (source P, placer).
 * - SPM (OML only): one per Specimen (id, type, collection time, accession number).
 * A cancel sends ORC and OBR only: notes, timing and specimens are the order's, not the cancel's.
 * @param input - The resources and message settings.
 * @returns The message (ER7, CR segment ends) and its control id, or the errors.
 */
export function buildLabOrder(input: LabOrderInput): LabOrderResult {
  const { serviceRequest: request, patient } = input;
  const errors: string[] = [];
  const ctx = replyContext(input.config, input.receiving);

  const control = orderControl(request, input.isChange);
  if (!control) {
    errors.push('ServiceRequest.status: only active (new or changed order) and revoked (cancel) orders are sent');
  }
  if (!STRUCTURE[input.messageType]) {
    errors.push('messageType: only ORM^O01 and OML^O21 are supported');
  }
  if (!input.controlId.trim()) {
    errors.push('controlId is empty');
  }
  if (!isFhirInstant(input.now)) {
    errors.push('now is not a FHIR instant');
  }
  errors.push(...referenceErrors(input));

  const placer = findPlacer(request, input.placerSystem);
  const placerEi = placer ? identifierToEi(placer, 'PLAC', ctx, input.config) : undefined;
  if (!placer) {
    errors.push('ServiceRequest.identifier: no placer order number (type PLAC)');
  } else if (!placerEi) {
    errors.push('ServiceRequest.identifier: the placer order number has no system that an assigning authority can name');
  }
  const filler = request.identifier?.find((i) => hasIdentifierType(i, 'FILL') && i.value?.trim());
  const fillerEi = filler ? identifierToEi(filler, 'FILL', ctx, input.config) : undefined;

  const code = conceptToCwe(request.code, ctx);
  if (!code && control !== 'CA') {
    errors.push('ServiceRequest.code: no coding with a code and a system');
  }

  const patientIds = patientIdentifiers(patient, ctx, input.config);
  if (!patientIds.length) {
    errors.push('Patient.identifier: no identifier with a value and a system');
  }
  const specimens = input.messageType === 'OML^O21' && control !== 'CA' ? (input.specimens ?? []) : [];
  specimens.forEach((specimen, i) => {
    if (!conceptToCwe(specimen.type, ctx)) {
      errors.push(`Specimen[${i}].type: no coding with a code and a system (SPM-4 is required)`);
    }
  });
  if (errors.length || !control || !placerEi) {
    return { errors };
  }

  const requester = practitionerToXcn(input.requester, ctx, input.config);
  const nowDtm = fhirToDtm(input.now);
  const authored = fhirToDtm(request.authoredOn);
  const occurrence = fhirToDtm(request.occurrenceDateTime ?? request.occurrencePeriod?.start);
  const occurrenceEnd = request.occurrenceDateTime ? undefined : fhirToDtm(request.occurrencePeriod?.end);
  const priority = request.priority ? PRIORITY[request.priority] : undefined;
  const full = control !== 'CA';

  const segments: Hl7Segment[] = [
    buildSegment('MSH', {
      3: text(input.sending.application),
      4: text(input.sending.facility),
      5: text(input.receiving.application),
      6: text(input.receiving.facility),
      7: text(nowDtm),
      9: one([...input.messageType.split('^'), STRUCTURE[input.messageType]]),
      10: text(input.controlId),
      11: text(input.processingId ?? 'P'),
      12: text(VERSION),
    }),
    buildSegment('PID', pidFields(patient, patientIds)),
    buildSegment('PV1', pv1Fields(input, ctx)),
    buildSegment('ORC', {
      1: text(control),
      2: one(placerEi),
      3: one(fillerEi),
      4: one(request.requisition ? identifierToEi(request.requisition, 'PGN', ctx, input.config) : undefined),
      // The inbound map reads ORC-9 of a new order as its authoredOn.
      9: text(control === 'NW' ? (authored ?? nowDtm) : nowDtm),
      12: one(requester),
    }),
  ];
  const timing = full && (priority || occurrence);
  if (timing && input.messageType === 'OML^O21') {
    segments.push(buildSegment('TQ1', { 1: text('1'), 7: text(occurrence), 8: text(occurrenceEnd), 9: text(priority) }));
  }
  if (code) {
    segments.push(
      buildSegment('OBR', {
        1: text('1'),
        2: one(placerEi),
        3: one(fillerEi),
        4: one(code),
        7: text(occurrence ?? authored),
        16: one(requester),
        // TQ: quantity ^ interval ^ duration ^ start ^ end ^ priority (ORM^O01 has no TQ1 segment).
        27: timing && input.messageType === 'ORM^O01' ? one(['', '', '', occurrence ?? '', occurrenceEnd ?? '', priority ?? '']) : undefined,
        31: full ? (request.reasonCode ?? []).map((r) => conceptToCwe(r, ctx)).filter((r): r is Repetition => Boolean(r)) : undefined,
      })
    );
  }
  if (full) {
    const notes = (request.note ?? []).map((n) => n.text).filter((t) => t?.trim());
    notes.forEach((note, i) => segments.push(buildSegment('NTE', { 1: text(String(i + 1)), 2: text('P'), 3: text(note) })));
    specimens.forEach((specimen, i) => segments.push(buildSegment('SPM', spmFields(specimen, i + 1, ctx, input.config))));
  }

  const message = new Hl7Message(segments, OUTBOUND_CONTEXT);
  markCharacterSet(message);
  return { message: message.toString(), controlId: input.controlId };
}

/**
 * @returns ORC-1 for the order's status, or undefined when the status is not sent.
 */
function orderControl(request: ServiceRequest, isChange: boolean | undefined): OrderControl | undefined {
  if (request.status === 'revoked') {
    return 'CA';
  }
  if (request.status === 'active') {
    return isChange ? 'XO' : 'NW';
  }
  return undefined;
}

/** The placer number: the identifier of type PLAC, else the one in the hub's placer system. */
function findPlacer(request: ServiceRequest, placerSystem: string | undefined): Identifier | undefined {
  const ids = (request.identifier ?? []).filter((i) => i.value?.trim());
  return ids.find((i) => hasIdentifierType(i, 'PLAC')) ?? (placerSystem ? ids.find((i) => i.system === placerSystem) : undefined);
}

/**
 * An order sent for another patient (or visit, or provider) than its ServiceRequest names is a
 * wrong-patient error that no receiver could detect: refused when both sides can be compared.
 */
function referenceErrors(input: LabOrderInput): string[] {
  const { serviceRequest: request } = input;
  const errors: string[] = [];
  if (refersElsewhere(request.subject, input.patient)) {
    errors.push('ServiceRequest.subject does not reference the Patient given');
  }
  if (input.encounter && refersElsewhere(request.encounter, input.encounter)) {
    errors.push('ServiceRequest.encounter does not reference the Encounter given');
  }
  if (input.encounter && refersElsewhere(input.encounter.subject, input.patient)) {
    errors.push('Encounter.subject does not reference the Patient given');
  }
  if (input.requester && refersElsewhere(request.requester, input.requester)) {
    errors.push('ServiceRequest.requester does not reference the Practitioner given');
  }
  return errors;
}

/** @returns True when the reference is a literal one to a resource other than `resource`. */
function refersElsewhere(reference: Reference | undefined, resource: { resourceType: string; id?: string }): boolean {
  const literal = reference?.reference?.replace(/\/_history\/[^/]+$/, '');
  if (!literal || !resource.id || literal.startsWith('#') || literal.startsWith('urn:')) {
    return false;
  }
  const target = `${resource.resourceType}/${resource.id}`;
  return literal !== target && !literal.endsWith('/' + target);
}

/**
 * PID-3: the identifiers an HD can name, medical record numbers first. Identifiers the inbound
 * map never matches by are left out: SSN and driver's licence (PID-19/20 inbound) and old ones.
 */
function patientIdentifiers(patient: Patient, ctx: MappingContext, config: MappingConfig): Repetition[] {
  const usable = (patient.identifier ?? []).filter(
    (i) => i.use !== 'old' && !hasIdentifierType(i, 'SS') && !hasIdentifierType(i, 'DL') && i.system !== US_SSN
  );
  const ordered = [...usable.filter((i) => hasIdentifierType(i, 'MR')), ...usable.filter((i) => !hasIdentifierType(i, 'MR'))];
  return ordered.map((i) => identifierToCx(i, ctx, config)).filter((cx): cx is Repetition => Boolean(cx));
}

function pidFields(patient: Patient, identifiers: Repetition[]): SegmentFields {
  // Official names first; nicknames are PID-9 aliases inbound, old names are not sent.
  const names = (patient.name ?? []).filter((n) => n.use !== 'old' && n.use !== 'nickname');
  const ordered = [...names.filter((n) => n.use === 'official'), ...names.filter((n) => n.use !== 'official')];
  const birthTime = (patient as Patient & { _birthDate?: { extension?: { url: string; valueDateTime?: string }[] } })._birthDate?.extension?.find(
    (e) => e.url === BIRTH_TIME
  )?.valueDateTime;
  return {
    1: text('1'),
    3: identifiers,
    5: ordered.map(humanNameToXpn).filter((x): x is Repetition => Boolean(x)),
    // A birth time on the other day than birthDate (an offset mix-up) is not trusted.
    7: text(fhirToDtm(patient.birthDate && birthTime?.startsWith(patient.birthDate) ? birthTime : patient.birthDate)),
    8: text(patient.gender ? SEX[patient.gender] : undefined),
  };
}

function pv1Fields(input: LabOrderInput, ctx: MappingContext): SegmentFields {
  const { encounter } = input;
  if (!encounter) {
    return { 1: text('1'), 2: text(input.defaultPatientClass ?? 'U') };
  }
  const actCode = encounter.class && (!encounter.class.system || encounter.class.system === ACT_CODE) ? (encounter.class.code ?? '') : '';
  const visits = (encounter.identifier ?? []).filter((i) => i.use !== 'old' && i.value?.trim());
  const visit = visits.find((i) => identifierTypeCode(i) === 'VN') ?? visits[0];
  return {
    1: text('1'),
    2: text(PATIENT_CLASS[actCode.toUpperCase()] ?? 'U'),
    19: one(visit ? identifierToCx(visit, ctx, input.config, 'VN') : undefined),
  };
}

/**
 * SPM (the inverse of the inbound SPM map): SPM-2 EIP (placer id & filler id as EI
 * subcomponents), SPM-4 type, SPM-17 collection time (DR), SPM-30 accession number.
 */
function spmFields(specimen: Specimen, setId: number, ctx: MappingContext, config: MappingConfig): SegmentFields {
  const ids = (specimen.identifier ?? []).filter((i) => i.value?.trim());
  const filler = ids.find((i) => hasIdentifierType(i, 'FILL'));
  const placer = ids.find((i) => hasIdentifierType(i, 'PLAC')) ?? ids.find((i) => i !== filler && !identifierTypeCode(i));
  const ei = (i: Identifier | undefined, type: string): readonly string[] =>
    (i ? identifierToEi(i, type, ctx, config) : undefined)?.map((c) => (typeof c === 'string' ? c : '')) ?? [];
  const collected = specimen.collection?.collectedDateTime ?? specimen.collection?.collectedPeriod?.start;
  const collectedEnd = specimen.collection?.collectedDateTime ? undefined : specimen.collection?.collectedPeriod?.end;
  const eip = [ei(placer, 'PLAC'), ei(filler, 'FILL')];
  const fields: Record<number, Field | undefined> = {
    1: text(String(setId)),
    2: eip.some((e) => e.length) ? one(eip) : undefined,
    4: one(conceptToCwe(specimen.type, ctx)),
    17: collected || collectedEnd ? one([fhirToDtm(collected) ?? '', fhirToDtm(collectedEnd) ?? '']) : undefined,
    30: one(specimen.accessionIdentifier ? identifierToCx(specimen.accessionIdentifier, ctx, config) : undefined),
  };
  return fields;
}

/** MSH-18: the message is written as UTF-8; the character set is named once it is not plain ASCII. */
function markCharacterSet(message: Hl7Message): void {
  // eslint-disable-next-line no-control-regex
  if (/[^\u0000-\u007f]/.test(message.toString())) {
    message.header.setField(18, 'UNICODE UTF-8');
  }
}
