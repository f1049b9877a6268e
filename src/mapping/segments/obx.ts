import type { Hl7Segment } from '@medplum/core';
import type { CodeableConcept, Encounter, Observation, Organization, Patient, Reference, ServiceRequest, Specimen } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { FieldRep, isNullField, rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { eiToIdentifier } from '../datatypes/identifier.ts';
import type { ObservationGroup } from '../groups.ts';
import { at } from '../groups.ts';
import { conceptToken, syntheticIdentifier } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef, MappingError } from '../plan.ts';
import { interpretations, referenceRange } from './obx-interpretation.ts';
import { quantityUnits } from '../datatypes/units.ts';
import type { DocumentContent } from './obx-value.ts';
import { obxValue, VALUE_KEYS } from './obx-value.ts';
import { ntesToAnnotations } from './nte.ts';
import { practitionerRef, xonOrganizationRef } from './practitioner.ts';

/** HL7 table 0085 observation result status (OBX-11) → FHIR observation-status (IG map). */
export const RESULT_STATUS: Record<string, Observation['status']> = {
  A: 'amended',
  B: 'amended',
  C: 'corrected',
  D: 'entered-in-error',
  F: 'final',
  I: 'registered',
  N: 'cancelled',
  O: 'registered',
  P: 'preliminary',
  R: 'preliminary',
  S: 'preliminary',
  U: 'final',
  V: 'final',
  W: 'entered-in-error',
  X: 'cancelled',
};

/** Statuses that mean there is no result: the value is replaced by a data-absent reason. */
const ABSENT_REASON: Record<string, string> = { X: 'not-performed', N: 'not-asked' };

/** Where the observations of one order group belong and what they inherit from the OBR. */
export interface ObservationContext {
  /** Token of the order's match identifier: the first part of every observation identifier. */
  readonly orderToken: string;
  readonly patientKey: string;
  readonly encounterKey?: string;
  readonly serviceRequestKey?: string;
  /** Specimen observations (OBX after SPM): the Specimen's plan key and identity token. */
  readonly specimen?: { readonly key: string; readonly token: string };
  /** The order's only Specimen: the one every result was made on. */
  readonly specimenKey?: string;
  /** A specimen without an identifier (OBR-15 source): referenced by display only. */
  readonly specimenDisplay?: string;
  /** The category of an observation with this code (from OBR-24 and the code). */
  readonly category: (code: CodeableConcept) => CodeableConcept[];
  /** OBR-7/OBR-8, used when OBX-14 is empty. */
  readonly effective: Pick<Observation, 'effectiveDateTime' | 'effectivePeriod'>;
  /** OBR-22. */
  readonly issued?: string;
  /** Status implied by OBR-25, used when OBX-11 is empty. */
  readonly defaultStatus?: Observation['status'];
}

/** What an OBX (with its text continuations) maps to. */
export type MappedObservation =
  | { readonly kind: 'observation'; readonly plan: ResourcePlan<Observation> }
  | { readonly kind: 'documents'; readonly documents: DocumentContent[]; readonly title?: string; readonly creation?: string };

const TEXT_TYPES = new Set(['ST', 'TX', 'FT']);
const BLANK = new FieldRep([['']]);

/**
 * Groups the OBX segments of an order: consecutive text OBX (ST/TX/FT) with the same OBX-3 and
 * OBX-4 are one result sent line by line (report text), so they become one Observation.
 * @param observations - The OBX groups in message order.
 * @returns The OBX groups of each result.
 */
export function groupObservations(observations: readonly ObservationGroup[]): ObservationGroup[][] {
  const result: ObservationGroup[][] = [];
  // Value type and identity of the first OBX of the last result, read once per result.
  let runType = '';
  let runIdentity = '';
  for (const group of observations) {
    const previous = result.at(-1);
    const type = val(group.obx.segment, 2).trim().toUpperCase();
    const identity = resultLineIdentity(group.obx.segment);
    if (previous && TEXT_TYPES.has(type) && runType === type && runIdentity === identity) {
      previous.push(group);
    } else {
      result.push([group]);
      runType = type;
      runIdentity = identity;
    }
  }
  return result;
}

/** OBX-5 of one line of a multi-line text result: its repetitions, or one blank line when empty. */
function linesOrBlank(values: FieldRep[]): FieldRep[] {
  return values.length ? values : [BLANK];
}

/** OBX-3.1, OBX-3.3 and OBX-4: what the lines of one text result share. */
function resultLineIdentity(obx: Hl7Segment): string {
  const code = rep(obx, 3);
  return [code?.get(1), code?.get(3), val(obx, 4)].join('|');
}

/**
 * OBX (+ NTE) → Observation (IG OBX[Observation] map): OBX-3 → code, OBX-5 by OBX-2 → value[x]
 * (see `obxValue`), OBX-7 → referenceRange, OBX-8 → interpretation, OBX-11 → status (X/N →
 * cancelled with a dataAbsentReason), OBX-14 (else OBR-7) → effective, OBX-16/OBX-25 →
 * performer (Practitioner), OBX-23 (else OBX-15) → performer (Organization), OBX-17 → method,
 * OBX-18 → device (display only: the hub keeps no device registry), OBX-20 → bodySite, OBX-21 →
 * identifier, NTE → note. Identity is `[order token, OBX-3 code, OBX-4 sub-id]` (plus the
 * specimen, and an occurrence number when the sender repeats the same code and sub-id), so a
 * corrected or final result updates the preliminary one. An ED/RP document is returned as a
 * document for the DiagnosticReport instead.
 * @param parts - The OBX group and its text continuations.
 * @param octx - What the order group gives its observations.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far (performers are added).
 * @param seen - Identities used so far in this order group (for repeated code/sub-id pairs).
 * @returns The Observation plan or the documents; undefined when there is nothing to record.
 */
export function mapObservation(
  parts: readonly ObservationGroup[],
  octx: ObservationContext,
  ctx: MappingContext,
  plans: ResourcePlan[],
  seen: Map<string, number>
): MappedObservation | undefined {
  const first = parts[0].obx;
  const obx = first.segment;
  const codeField = rep(obx, 3);
  const code = codeField ? cweToCodeableConcept(codeField, ctx) : undefined;
  if (!code) {
    throw new MappingError({ code: Hl7ErrorCode.RequiredFieldMissing, text: 'OBX-3 (observation identifier) is missing', location: at(first, 3) });
  }
  const valueType = val(obx, 2);
  const units = rep(obx, 6);
  // A text continuation OBX with an empty OBX-5 is a blank line of the report.
  const values = parts.length > 1 ? parts.flatMap((p) => linesOrBlank(reps(p.obx.segment, 5))) : reps(obx, 5);
  const value = obxValue(valueType, values, units, ctx, at(first, 5));
  const effective = ctx.dateTime(val(obx, 14), at(first, 14));
  if (value.documents) {
    return { kind: 'documents', documents: value.documents, title: code.text ?? code.coding?.[0]?.display, ...(effective ? { creation: effective } : {}) };
  }
  if (valueType.trim().toUpperCase() === 'ED' && !value.value) {
    // The document could not be read (warned): an Observation without it would say nothing.
    return undefined;
  }

  const resultStatus = val(obx, 11).trim().toUpperCase();
  let status = RESULT_STATUS[resultStatus] ?? octx.defaultStatus;
  if (!status) {
    ctx.warn({ code: Hl7ErrorCode.RequiredFieldMissing, text: 'OBX-11 (result status) is empty or unknown and OBR-25 gives none; status unknown', location: at(first, 11) });
    status = 'unknown';
  }
  const subId = val(obx, 4).trim();
  const identityParts = [octx.orderToken, conceptToken(code), subId, ...(octx.specimen ? [octx.specimen.token] : [])];
  const identityKey = identityParts.join('\u0000');
  const occurrence = (seen.get(identityKey) ?? 0) + 1;
  seen.set(identityKey, occurrence);
  const identifier = syntheticIdentifier('observation', ctx, occurrence > 1 ? [...identityParts, `#${occurrence}`] : identityParts);

  const observation: Observation = {
    resourceType: 'Observation',
    identifier: [identifier],
    status,
    category: octx.category(code),
    code,
    subject: localRef<Patient>(octx.patientKey),
  };
  const instance = rep(obx, 21);
  const instanceId = instance ? eiToIdentifier(instance, ctx, '', at(first, 21)) : undefined;
  if (instanceId) {
    observation.identifier?.push(instanceId);
  }
  if (octx.serviceRequestKey) {
    observation.basedOn = [localRef<ServiceRequest>(octx.serviceRequestKey)];
  }
  if (octx.encounterKey) {
    observation.encounter = localRef<Encounter>(octx.encounterKey);
  }
  if (octx.specimen) {
    // IG: an OBX in the SPECIMEN group is about the specimen (focus), made on it (specimen).
    observation.focus = [localRef(octx.specimen.key)];
    observation.specimen = localRef<Specimen>(octx.specimen.key);
  } else if (octx.specimenKey) {
    observation.specimen = localRef<Specimen>(octx.specimenKey);
  } else if (octx.specimenDisplay) {
    observation.specimen = { display: octx.specimenDisplay };
  }
  if (effective) {
    observation.effectiveDateTime = effective;
  } else {
    Object.assign(observation, octx.effective);
  }
  if (octx.issued) {
    observation.issued = octx.issued;
  }

  const clear: string[] = [];
  const absent = ABSENT_REASON[resultStatus];
  if (absent) {
    observation.dataAbsentReason = {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: absent }],
    };
    clear.push(...VALUE_KEYS, 'component');
  } else if (value.value) {
    Object.assign(observation, value.value);
    const key = Object.keys(value.value)[0];
    clear.push(...VALUE_KEYS.filter((k) => k !== key), 'component', 'dataAbsentReason');
  } else if (value.components) {
    observation.component = value.components.map((c) => ({ code, ...c }));
    clear.push(...VALUE_KEYS, 'dataAbsentReason');
  } else if (values.length === 1 && values[0].isNull) {
    clear.push(...VALUE_KEYS, 'component');
  }

  const unit = quantityUnits(units, ctx);
  const range = referenceRange(rep(obx, 7), unit);
  if (range) {
    observation.referenceRange = [range];
  } else if (isNullField(obx, 7)) {
    clear.push('referenceRange');
  }
  const flags = interpretations(reps(obx, 8));
  if (flags.length) {
    observation.interpretation = flags;
  } else if (isNullField(obx, 8)) {
    clear.push('interpretation');
  }

  const performers = observationPerformers(parts[0], ctx, plans);
  if (performers.length) {
    observation.performer = performers;
  }
  const method = rep(obx, 17);
  const methodConcept = method ? cweToCodeableConcept(method, ctx) : undefined;
  if (methodConcept) {
    observation.method = methodConcept;
  } else if (isNullField(obx, 17)) {
    clear.push('method');
  }
  const device = rep(obx, 18);
  if (device && !device.isEmpty() && device.get(1).trim()) {
    const model = device.get(2).trim();
    observation.device = { display: model ? `${device.get(1).trim()} (${model})` : device.get(1).trim() };
  }
  const site = rep(obx, 20);
  const bodySite = site ? cweToCodeableConcept(site, ctx) : undefined;
  if (bodySite) {
    observation.bodySite = bodySite;
  }
  const notes = ntesToAnnotations(
    parts.flatMap((p) => p.notes),
    ctx,
    plans
  );
  if (notes.length) {
    observation.note = notes;
  }

  return {
    kind: 'observation',
    plan: {
      key: `Observation/${identifier.value}`,
      resource: observation,
      identifiers: [identifier],
      merge: 'overlay',
      ...(clear.length ? { clear } : {}),
    },
  };
}

/** OBX-16 responsible observer, OBX-25 medical director (Practitioners), OBX-23 / OBX-15 (Organization). */
function observationPerformers(group: ObservationGroup, ctx: MappingContext, plans: ResourcePlan[]): Reference<Organization>[] {
  const { obx } = group;
  const performers: Reference[] = [];
  for (const field of [16, 25]) {
    for (const xcn of reps(obx.segment, field)) {
      const ref = practitionerRef(xcn, ctx, at(obx, field), plans);
      if (ref) {
        performers.push(ref);
      }
    }
  }
  const organization = xonOrganizationRef(rep(obx.segment, 23), ctx, at(obx, 23), plans);
  if (organization) {
    performers.push(organization);
  } else {
    const producer = rep(obx.segment, 15);
    const name = producer ? producer.get(2).trim() || producer.get(1).trim() : '';
    if (name) {
      performers.push({ display: name });
    }
  }
  return performers as Reference<Organization>[];
}
