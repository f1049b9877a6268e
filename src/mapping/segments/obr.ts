import type {
  Attachment,
  CodeableConcept,
  DiagnosticReport,
  Encounter,
  Identifier,
  Observation,
  Patient,
  Practitioner,
  Reference,
  ServiceRequest,
  Specimen,
} from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { FieldRep, isNullField, rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept, hl7TableCoding } from '../datatypes/coding.ts';
import type { SegmentRef } from '../groups.ts';
import { at } from '../groups.ts';
import type { AttachmentUpload, ResourcePlan } from '../plan.ts';
import { localRef, MappingError } from '../plan.ts';
import type { DocumentContent } from './obx-value.ts';
import type { OrderNumbers } from './orc.ts';
import { practitionerRef } from './practitioner.ts';

/** HL7 table 0123 result status (OBR-25) → FHIR diagnostic-report-status (IG ResultStatus map). */
const REPORT_STATUS: Record<string, DiagnosticReport['status']> = {
  O: 'registered',
  I: 'registered',
  S: 'registered',
  A: 'partial',
  P: 'preliminary',
  R: 'partial',
  N: 'partial',
  C: 'corrected',
  M: 'corrected',
  F: 'final',
  X: 'cancelled',
};

/** OBR-25 → the status its observations have when OBX-11 is empty. */
const OBSERVATION_STATUS: Record<string, Observation['status']> = {
  O: 'registered',
  I: 'registered',
  S: 'registered',
  A: 'preliminary',
  P: 'preliminary',
  R: 'preliminary',
  N: 'preliminary',
  C: 'corrected',
  M: 'corrected',
  F: 'final',
  X: 'cancelled',
};

/**
 * @param obr - The OBR.
 * @returns The observation status OBR-25 implies, if any.
 */
export function observationStatusFromReport(obr: SegmentRef): Observation['status'] | undefined {
  return OBSERVATION_STATUS[val(obr.segment, 25).trim().toUpperCase()];
}

/**
 * @param obr - The OBR of a result.
 * @returns The status of an order first seen in this result: completed once final or corrected
 * results exist, revoked when the results were cancelled, else active.
 */
export function orderStatusFromReport(obr: SegmentRef): ServiceRequest['status'] {
  const status = val(obr.segment, 25).trim().toUpperCase();
  return status === 'F' || status === 'C' ? 'completed' : status === 'X' ? 'revoked' : 'active';
}

const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const V2_0074 = 'http://terminology.hl7.org/CodeSystem/v2-0074';

/** Diagnostic service sections (table 0074) whose results are not laboratory results. */
const SECTION_CATEGORY: Record<string, string> = {
  ICU: 'vital-signs',
  RAD: 'imaging',
  RX: 'imaging',
  CT: 'imaging',
  NMR: 'imaging',
  NMS: 'imaging',
  RUS: 'imaging',
  VUS: 'imaging',
  OUS: 'imaging',
  CUS: 'imaging',
  XRC: 'imaging',
  AU: 'procedure',
  EC: 'procedure',
  EN: 'procedure',
  CTH: 'procedure',
  PF: 'procedure',
  RC: 'therapy',
  RT: 'therapy',
  PT: 'therapy',
  OT: 'therapy',
  PHY: 'exam',
};

/** Laboratory diagnostic service sections (table 0074): their reports are also categorised LAB. */
const LAB_SECTIONS = new Set(['BG', 'BLB', 'CG', 'CH', 'CP', 'GE', 'HM', 'IMM', 'LAB', 'MB', 'MCB', 'MYC', 'OSL', 'SP', 'SR', 'TX', 'URN', 'VR']);

/**
 * LOINC codes of vital signs: the FHIR vital-signs profiles (heart rate, respiratory rate,
 * temperature, blood pressure, SpO2, body size) and the other bedside-monitor parameters (pulse
 * rate, end-tidal CO2, central venous and invasive arterial pressures).
 */
const VITAL_SIGNS = new Set([
  '8867-4',
  '8889-8',
  '9279-1',
  '8310-5',
  '8480-6',
  '8462-4',
  '8478-0',
  '85354-9',
  '59408-5',
  '2708-6',
  '29463-7',
  '8302-2',
  '39156-5',
  '9843-4',
  '8287-5',
  '19889-5',
  '60985-9',
  '76215-3',
  '76213-8',
  '76214-6',
]);

/**
 * The Observation category (observation-category): from the OBR-24 diagnostic service section
 * (ICU → vital-signs, imaging and procedure sections), else vital-signs for the LOINC codes of
 * the FHIR vital-signs profile, else laboratory.
 * @param obr - The OBR.
 * @param code - The observation's code.
 * @returns The category.
 */
export function observationCategory(obr: SegmentRef, code: CodeableConcept | undefined): CodeableConcept[] {
  const section = val(obr.segment, 24).trim().toUpperCase();
  const vital = code?.coding?.some((c) => c.system === 'http://loinc.org' && VITAL_SIGNS.has(c.code ?? ''));
  const category = SECTION_CATEGORY[section] ?? (vital ? 'vital-signs' : 'laboratory');
  return [{ coding: [{ system: OBSERVATION_CATEGORY, code: category }] }];
}

/**
 * OBR-7 (observation date/time) and OBR-8 (end) → effective[x].
 * @param obr - The OBR.
 * @param ctx - The mapping context.
 * @returns effectiveDateTime, effectivePeriod (with an end), or nothing.
 */
export function reportEffective(obr: SegmentRef, ctx: MappingContext): Pick<DiagnosticReport, 'effectiveDateTime' | 'effectivePeriod'> {
  const start = ctx.dateTime(val(obr.segment, 7), at(obr, 7));
  const end = ctx.dateTime(val(obr.segment, 8), at(obr, 8));
  if (end) {
    return { effectivePeriod: { ...(start ? { start } : {}), end } };
  }
  return start ? { effectiveDateTime: start } : {};
}

/**
 * @param obr - The OBR.
 * @returns The display of the OBR-15 specimen source (SPS.1), used to name a specimen that has no
 * identifier (no Specimen resource is invented for it).
 */
export function specimenSourceDisplay(obr: SegmentRef): string | undefined {
  const source = rep(obr.segment, 15);
  const text = source ? source.sub(1, 2).trim() || source.sub(1, 1).trim() : '';
  return text || undefined;
}

/** What a DiagnosticReport refers to and contains. */
export interface ReportParts {
  readonly patientKey: string;
  readonly encounterKey?: string;
  readonly serviceRequestKey?: string;
  readonly specimenKeys: readonly string[];
  readonly specimenDisplay?: string;
  readonly resultKeys: readonly string[];
  /** Statuses of the results, for a report whose OBR-25 is empty. */
  readonly resultStatuses: readonly Observation['status'][];
  readonly documents: readonly (DocumentContent & { title?: string; creation?: string })[];
  /** True when every result is a vital sign (a monitor's report without OBR-24). */
  readonly vitalSignsOnly?: boolean;
  /** NTE after the OBR (report-level comments). */
  readonly conclusion?: string;
  /** OBR-7/OBR-8 (read once per OBR by {@link reportEffective}). */
  readonly effective: Pick<DiagnosticReport, 'effectiveDateTime' | 'effectivePeriod'>;
  /** OBR-22 (read once per OBR by {@link reportIssued}). */
  readonly issued?: string;
}

/**
 * @param obr - The OBR.
 * @param ctx - The mapping context.
 * @returns OBR-22 (results reported / status changed) as an instant, if valid.
 */
export function reportIssued(obr: SegmentRef, ctx: MappingContext): string | undefined {
  return ctx.instant(val(obr.segment, 22), at(obr, 22));
}

/**
 * OBR → DiagnosticReport (IG OBR[DiagnosticReport] map): identifiers OBR-2 (PLAC) and OBR-3
 * (FILL), OBR-4 → code, OBR-7/8 → effective[x], OBR-22 → issued, OBR-24 → category (v2-0074,
 * plus LAB for laboratory sections; LAB when empty, vital-signs for monitor reports), OBR-25 → status (from the results' statuses when empty), OBR-32 →
 * resultsInterpreter, OBR-34 → performer; basedOn the ServiceRequest, result → Observations,
 * specimen → Specimens, ED documents → presentedForm (content uploaded as Binary), NTE after the
 * OBR → conclusion (R4 has no DiagnosticReport.note).
 * @param obr - The OBR.
 * @param numbers - The order numbers.
 * @param parts - References and contents.
 * @param key - The plan key.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far (practitioners are added).
 * @returns The DiagnosticReport plan.
 */
export function mapDiagnosticReport(
  obr: SegmentRef,
  numbers: OrderNumbers,
  parts: ReportParts,
  key: string,
  ctx: MappingContext,
  plans: ResourcePlan[]
): ResourcePlan<DiagnosticReport> {
  const codeField = rep(obr.segment, 4);
  const code = codeField ? cweToCodeableConcept(codeField, ctx) : undefined;
  if (!code) {
    throw new MappingError({ code: Hl7ErrorCode.RequiredFieldMissing, text: 'OBR-4 (universal service identifier) is missing', location: at(obr, 4) });
  }
  const report: DiagnosticReport = {
    resourceType: 'DiagnosticReport',
    identifier: [numbers.placer, numbers.filler].filter((i): i is Identifier => Boolean(i)),
    status: REPORT_STATUS[val(obr.segment, 25).trim().toUpperCase()] ?? statusFromResults(parts.resultStatuses),
    category: reportCategory(obr, parts.vitalSignsOnly ?? false),
    code,
    subject: localRef<Patient>(parts.patientKey),
    ...parts.effective,
  };
  if (parts.serviceRequestKey) {
    report.basedOn = [localRef<ServiceRequest>(parts.serviceRequestKey)];
  }
  if (parts.encounterKey) {
    report.encounter = localRef<Encounter>(parts.encounterKey);
  }
  if (parts.issued) {
    report.issued = parts.issued;
  }
  const clear: string[] = [];
  const performers = ndlRefs(obr, 34, ctx, plans);
  if (performers.length) {
    report.performer = performers;
  } else if (isNullField(obr.segment, 34)) {
    clear.push('performer');
  }
  const interpreters = ndlRefs(obr, 32, ctx, plans);
  if (interpreters.length) {
    report.resultsInterpreter = interpreters;
  } else if (isNullField(obr.segment, 32)) {
    clear.push('resultsInterpreter');
  }
  if (parts.specimenKeys.length) {
    report.specimen = parts.specimenKeys.map((k) => localRef<Specimen>(k));
  } else if (parts.specimenDisplay) {
    report.specimen = [{ display: parts.specimenDisplay }];
  }
  if (parts.resultKeys.length) {
    report.result = parts.resultKeys.map((k) => localRef<Observation>(k));
  }
  if (parts.conclusion) {
    report.conclusion = parts.conclusion;
  }
  const uploads: AttachmentUpload[] = [];
  const forms: Attachment[] = [];
  for (const doc of parts.documents) {
    const attachment: Attachment = { ...doc.attachment };
    if (doc.title) {
      attachment.title = doc.title;
    }
    if (doc.creation) {
      attachment.creation = doc.creation;
    }
    if (doc.upload) {
      uploads.push({ path: `presentedForm.${forms.length}`, ...doc.upload });
    }
    forms.push(attachment);
  }
  if (forms.length) {
    report.presentedForm = forms;
  }
  return {
    key,
    resource: report,
    identifiers: [numbers.filler, numbers.placer].filter((i): i is Identifier => Boolean(i)),
    merge: 'overlay',
    ...(clear.length ? { clear } : {}),
    ...(uploads.length ? { uploads } : {}),
  };
}

/**
 * DiagnosticReport.category: the OBR-24 section (v2-0074), plus LAB for laboratory sections; LAB
 * when OBR-24 is empty, or vital-signs for a report of vital signs only (bedside monitors).
 */
function reportCategory(obr: SegmentRef, vitalSignsOnly: boolean): CodeableConcept[] {
  const code = val(obr.segment, 24).trim().toUpperCase();
  const section = hl7TableCoding(code, '0074');
  if (!section) {
    return vitalSignsOnly ? [{ coding: [{ system: OBSERVATION_CATEGORY, code: 'vital-signs' }] }] : [{ coding: [{ system: V2_0074, code: 'LAB' }] }];
  }
  return LAB_SECTIONS.has(code) && code !== 'LAB' ? [{ coding: [{ system: V2_0074, code: 'LAB' }] }, { coding: [section] }] : [{ coding: [section] }];
}

/** A report status from its results' statuses, for an OBR without OBR-25. */
function statusFromResults(statuses: readonly Observation['status'][]): DiagnosticReport['status'] {
  if (statuses.length === 0) {
    return 'unknown';
  }
  if (statuses.every((s) => s === 'final' || s === 'corrected' || s === 'amended')) {
    return statuses.some((s) => s !== 'final') ? 'corrected' : 'final';
  }
  if (statuses.every((s) => s === 'cancelled' || s === 'entered-in-error')) {
    return 'cancelled';
  }
  return statuses.some((s) => s === 'preliminary') ? 'preliminary' : 'partial';
}

/**
 * NDL (OBR-32 interpreter, OBR-34 technician: a CNN name in NDL.1 subcomponents) → Practitioner
 * references, through the XCN map (CNN.9-11 assigning authority become XCN.9).
 */
function ndlRefs(obr: SegmentRef, field: number, ctx: MappingContext, plans: ResourcePlan[]): Reference<Practitioner>[] {
  const result: Reference<Practitioner>[] = [];
  for (const ndl of reps(obr.segment, field)) {
    const cnn = ndl.components[0] ?? [];
    const part = (i: number): string => cnn[i - 1] ?? '';
    const xcn = new FieldRep([[part(1)], [part(2)], [part(3)], [part(4)], [part(5)], [part(6)], [part(7)], [part(8)], [part(9), part(10), part(11)]]);
    const ref = practitionerRef(xcn, ctx, at(obr, field), plans);
    if (ref) {
      result.push(ref);
    }
  }
  return result;
}
