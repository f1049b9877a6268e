import { randomBytes } from 'node:crypto';

/**
 * Realistic HL7 v2 messages for the end-to-end scenarios, in the styles of the senders configured
 * under agent-config/ and seed/ (Northside ADT and EHR, Acme lab, ICU monitors, the state
 * immunization registry). Every builder takes the identifiers of one test patient so that each
 * scenario works on data of its own; message texts are ER7 with CR segment ends.
 */

/** A test patient with its identifiers: fresh random values per call. */
export interface TestPatient {
  /** PID-3 MRN value (assigning authority NSH, NamingSystem naming-northside-mrn). */
  readonly mrn: string;
  /** PV1-19 visit number value (NSHV). */
  readonly visit: string;
  readonly family: string;
  readonly given: string;
  /** A short random tag of the patient, used to derive order numbers, document ids... */
  readonly tag: string;
}

/** Identifier systems the seed NamingSystems give the messages' assigning authorities. */
export const SYSTEMS = {
  mrn: 'https://northside.example.org/fhir/sid/mrn',
  visit: 'https://northside.example.org/fhir/sid/visit',
  placer: 'https://northside.example.org/fhir/sid/placer-order',
  acmeFiller: 'https://acmelab.example.com/fhir/sid/filler-order',
  npi: 'http://hl7.org/fhir/sid/us-npi',
} as const;

/**
 * @param family - Family name of the patient (use latin1-safe text for the state registry).
 * @param given - Given name.
 * @returns A patient with random MRN and visit number.
 */
export function testPatient(family = 'Rivera', given = 'Jane'): TestPatient {
  const tag = randomBytes(5).toString('hex').toUpperCase();
  return { mrn: `E2E${tag}`, visit: `V${tag}`, family, given, tag };
}

/** @returns A fresh MSH-10. */
export function controlId(prefix = 'E2E'): string {
  return `${prefix}${randomBytes(6).toString('hex').toUpperCase()}`;
}

/**
 * Builds a segment from numbered fields (HL7 field numbers, 1-based), so that far fields such as
 * PV1-44 or IN1-36 are placed without counting bars by hand.
 * @param name - Segment name.
 * @param fields - Field number to ER7 text (components already joined with `^`).
 * @returns The segment text.
 */
function segment(name: string, fields: Record<number, string>): string {
  const last = Math.max(0, ...Object.keys(fields).map(Number));
  const parts = [name];
  for (let i = 1; i <= last; i++) {
    parts.push(fields[i] ?? '');
  }
  return parts.join('|');
}

/** Options shared by the builders. */
export interface MessageOptions {
  /** MSH-10; a fresh one by default. */
  readonly controlId?: string;
  /** MSH-7 / EVN-2 (HL7 DTM); a time without offset takes the sender's configured zone. */
  readonly time?: string;
}

const ATTENDING = '1234567893^Hartman^Alice^M^^Dr^^^NPI^L^^^NPI';
const ORDERING = '1987654325^Okafor^Oscar^^^Dr^^^NPI^L^^^NPI';

function msh(app: string, facility: string, type: string, options: MessageOptions, extra: Record<number, string> = {}): string {
  const fields: Record<number, string> = {
    3: app,
    4: facility,
    5: 'HUB',
    6: 'NORTHSIDE',
    7: options.time ?? '20240315083000',
    9: type,
    10: options.controlId ?? controlId(),
    11: 'P',
    12: '2.5.1',
    ...extra,
  };
  // MSH-1 is the field separator itself and MSH-2 the encoding characters: fields from MSH-3 on follow.
  const last = Math.max(...Object.keys(fields).map(Number));
  const rest: string[] = [];
  for (let i = 3; i <= last; i++) {
    rest.push(fields[i] ?? '');
  }
  return 'MSH|^~\\&|' + rest.join('|');
}

function pid(p: TestPatient, extra: Record<number, string> = {}): string {
  return segment('PID', {
    1: '1',
    3: `${p.mrn}^^^NSH^MR`,
    5: `${p.family}^${p.given}^Q^^^^L`,
    7: '19800102',
    8: 'F',
    11: '12 Oak St^^Springfield^IL^62701^USA^H',
    13: '^PRN^PH^^1^217^5551234',
    15: 'en^English^ISO639',
    16: 'M^Married^HL70002',
    ...extra,
  });
}

/**
 * ADT^A01 (admit) from the Northside ADT system with next of kin, an allergy, a diagnosis and
 * an insurance: Patient, Encounter, RelatedPerson, AllergyIntolerance, Condition, Coverage (and
 * its payor Organization), Practitioner, Location.
 */
export function adtA01(p: TestPatient, options: MessageOptions & { event?: string; address?: string; phone?: string } = {}): string {
  const time = options.time ?? '20240315083000';
  const event = options.event ?? 'A01';
  const changes: Record<number, string> = {};
  if (options.address) {
    changes[11] = options.address;
  }
  if (options.phone) {
    changes[13] = options.phone;
  }
  return [
    msh('ADTSYS', 'NORTHSIDE', `ADT^${event}^ADT_A01`, { ...options, time }, { 15: 'AL', 16: 'NE' }),
    segment('EVN', { 1: event, 2: time }),
    pid(p, changes),
    segment('NK1', {
      1: '1',
      2: `${p.family}^Carlos^^^^^L`,
      3: 'SPO^Spouse^HL70063',
      4: '12 Oak St^^Springfield^IL^62701^USA^H',
      5: '^PRN^PH^^1^217^5555678',
      7: 'EC^Emergency Contact^HL70131',
    }),
    segment('PV1', {
      1: '1',
      2: 'I',
      3: '4W^401^A^NSH^^^^^4 West',
      4: 'E^Emergency^HL70007',
      7: ATTENDING,
      10: 'MED',
      14: '7^Emergency room^HL70023',
      17: ATTENDING,
      19: `${p.visit}^^^NSHV^VN`,
      44: '20240315080000',
    }),
    segment('AL1', { 1: '1', 2: 'DA^Drug allergy^HL70127', 3: '7980^Penicillin G^RXNORM', 4: 'SV^Severe^HL70128', 5: 'Hives' }),
    segment('DG1', { 1: '1', 3: 'J18.9^Pneumonia, unspecified organism^I10', 5: '20240315080000', 6: 'A' }),
    segment('IN1', {
      1: '1',
      2: 'PPO01^Blue Cross PPO^L',
      3: 'BCBSIL',
      4: 'Blue Cross Blue Shield of Illinois',
      5: '300 E Randolph St^^Chicago^IL^60601^USA',
      7: '^WPN^PH^^1^800^5550100',
      8: `GRP${p.tag}`,
      12: '20240101',
      13: '20241231',
      15: 'PPO',
      16: `${p.family}^${p.given}^Q`,
      17: 'SEL^Self^HL70063',
      18: '19800102',
      36: `POL${p.tag}`,
    }),
  ].join('\r');
}

/**
 * ADT^A08 (update patient information) for the same visit: a new address and phone.
 */
export function adtA08(p: TestPatient, options: MessageOptions = {}): string {
  const time = options.time ?? '20240316101500';
  return [
    msh('ADTSYS', 'NORTHSIDE', 'ADT^A08^ADT_A01', { ...options, time }, { 15: 'AL', 16: 'NE' }),
    segment('EVN', { 1: 'A08', 2: time }),
    pid(p, { 11: '48 Elm Ave^Apt 2^Springfield^IL^62704^USA^H', 13: '^PRN^PH^^1^217^5559876' }),
    segment('PV1', {
      1: '1',
      2: 'I',
      3: '4W^402^B^NSH^^^^^4 West',
      7: ATTENDING,
      10: 'MED',
      19: `${p.visit}^^^NSHV^VN`,
      44: '20240315080000',
    }),
  ].join('\r');
}

/** The same A01 without PID-3: a data error (AE, ERR at PID-3). */
export function adtWithoutPatientId(p: TestPatient, options: MessageOptions = {}): string {
  return adtA01(p, options).replace(/\rPID\|1\|\|[^|]*\|/, '\rPID|1|||');
}

/**
 * ORU^R01 from Acme Reference Lab: a metabolic panel with four results (one high) for a Northside
 * order (placer number NSHORD, filler ACME).
 */
export function oruR01(p: TestPatient, options: MessageOptions & { placer?: string; filler?: string } = {}): string {
  const placer = options.placer ?? `ORD${p.tag}`;
  const filler = options.filler ?? `ACC${p.tag}`;
  const time = options.time ?? '20240315143000';
  return [
    msh('LABSYS', 'ACMELAB', 'ORU^R01^ORU_R01', { ...options, time }, { 15: 'AL', 16: 'NE' }),
    pid(p),
    segment('PV1', { 1: '1', 2: 'I', 19: `${p.visit}^^^NSHV^VN` }),
    segment('ORC', { 1: 'RE', 2: `${placer}^NSHORD`, 3: `${filler}^ACME`, 5: 'CM', 9: time, 12: ORDERING }),
    segment('OBR', {
      1: '1',
      2: `${placer}^NSHORD`,
      3: `${filler}^ACME`,
      4: '24323-8^Comprehensive metabolic panel^LN',
      7: '20240315090000',
      16: ORDERING,
      22: time,
      24: 'CH',
      25: 'F',
    }),
    segment('OBX', { 1: '1', 2: 'NM', 3: '2345-7^Glucose^LN', 5: '95', 6: 'mg/dL^mg/dL^UCUM', 7: '70-99', 8: 'N', 11: 'F', 14: '20240315090000' }),
    segment('OBX', { 1: '2', 2: 'NM', 3: '2160-0^Creatinine^LN', 5: '1.1', 6: 'mg/dL^mg/dL^UCUM', 7: '0.6-1.2', 8: 'N', 11: 'F', 14: '20240315090000' }),
    segment('OBX', { 1: '3', 2: 'NM', 3: '2951-2^Sodium^LN', 5: '141', 6: 'mmol/L^mmol/L^UCUM', 7: '136-145', 8: 'N', 11: 'F', 14: '20240315090000' }),
    segment('OBX', { 1: '4', 2: 'NM', 3: '2823-3^Potassium^LN', 5: '5.6', 6: 'mmol/L^mmol/L^UCUM', 7: '3.5-5.1', 8: 'H', 11: 'F', 14: '20240315090000' }),
    segment('NTE', { 1: '1', 3: 'Specimen slightly hemolyzed.' }),
  ].join('\r');
}

/**
 * ORM^O01 (new order) from the Northside EHR for the metabolic panel, with an order comment and
 * a reason (DG1).
 */
export function ormO01(p: TestPatient, options: MessageOptions & { placer?: string } = {}): string {
  const placer = options.placer ?? `ORD${p.tag}`;
  const time = options.time ?? '20240315084500';
  return [
    msh('EHR', 'NORTHSIDE', 'ORM^O01^ORM_O01', { ...options, time }, { 5: 'LABSYS', 6: 'ACMELAB', 15: 'AL', 16: 'NE' }),
    pid(p),
    segment('PV1', { 1: '1', 2: 'I', 3: '4W^401^A^NSH', 19: `${p.visit}^^^NSHV^VN` }),
    segment('ORC', { 1: 'NW', 2: `${placer}^NSHORD`, 4: `GRP${p.tag}^NSHORD`, 5: 'SC', 9: time, 12: ORDERING }),
    segment('OBR', { 1: '1', 2: `${placer}^NSHORD`, 4: '24323-8^Comprehensive metabolic panel^LN', 16: ORDERING, 27: '^^^20240315090000^^R' }),
    segment('NTE', { 1: '1', 3: 'Patient fasting since midnight.' }),
    segment('DG1', { 1: '1', 3: 'E11.9^Type 2 diabetes mellitus without complications^I10' }),
  ].join('\r');
}

/**
 * VXU^V04 from the state immunization registry (ISO 8859-1 channel): a hepatitis B dose with
 * route, site, lot, manufacturer and a funding-eligibility observation.
 */
export function vxuV04(p: TestPatient, options: MessageOptions = {}): string {
  const time = options.time ?? '20240301101500';
  return [
    msh('IISAPP', 'STATEIIS', 'VXU^V04^VXU_V04', { ...options, time }, { 15: 'ER', 16: 'AL', 18: '8859/1', 21: 'Z22^CDCPHINVS' }),
    pid(p, { 7: '20150610', 8: 'M', 11: 'Calle Ñandú 5^^Springfield^IL^62701^USA^H', 15: '', 16: '' }),
    segment('ORC', { 1: 'RE', 3: `IMM${p.tag}`, 12: ATTENDING }),
    segment('RXA', {
      1: '0',
      2: '1',
      3: '20240301',
      5: '08^Hep B, adolescent or pediatric^CVX',
      6: '0.5',
      7: 'mL^mL^UCUM',
      9: '00^New immunization record^NIP001',
      15: `LOT${p.tag.slice(0, 4)}`,
      16: '20260101',
      17: 'MSD^Merck and Co., Inc.^MVX',
      20: 'CP',
      21: 'A',
    }),
    segment('RXR', { 1: 'C28161^Intramuscular^NCIT', 2: 'LA^Left Arm^HL70163' }),
    segment('OBX', { 1: '1', 2: 'CE', 3: '64994-7^Vaccine funding program eligibility category^LN', 4: '1', 5: 'V02^VFC eligible - Medicaid/Medicaid Managed Care^HL70064', 11: 'F', 14: '20240301' }),
  ].join('\r');
}

/** MDM^T02 (original document with content) from the Northside EHR: a discharge summary. */
export function mdmT02(p: TestPatient, options: MessageOptions & { document?: string } = {}): string {
  const time = options.time ?? '20240318160000';
  return [
    msh('EHR', 'NORTHSIDE', 'MDM^T02^MDM_T02', { ...options, time }),
    segment('EVN', { 1: 'T02', 2: time }),
    pid(p),
    segment('PV1', { 1: '1', 2: 'I', 3: '4W^401^A^NSH', 19: `${p.visit}^^^NSHV^VN` }),
    segment('TXA', {
      1: '1',
      2: 'DS^Discharge summary^HL70270',
      3: 'TX',
      4: time,
      6: time,
      9: ATTENDING,
      12: options.document ?? `DOC${p.tag}`,
      17: 'AU',
      18: 'U',
      19: 'AV',
      25: 'Discharge summary',
    }),
    segment('OBX', { 1: '1', 2: 'TX', 3: '18842-5^Discharge summary^LN', 5: 'Admitted with community acquired pneumonia.', 11: 'F' }),
    segment('OBX', { 1: '2', 2: 'TX', 3: '18842-5^Discharge summary^LN', 5: 'Treated with IV antibiotics; discharged home in stable condition.', 11: 'F' }),
  ].join('\r');
}

/** SIU^S12 (new appointment) from the Northside EHR: a 30-minute follow-up visit with a physician in a clinic room. */
export function siuS12(p: TestPatient, options: MessageOptions & { appointment?: string } = {}): string {
  const time = options.time ?? '20240318163000';
  const appointment = options.appointment ?? `APT${p.tag}`;
  return [
    msh('EHR', 'NORTHSIDE', 'SIU^S12^SIU_S12', { ...options, time }),
    segment('SCH', {
      1: `${appointment}P`,
      2: appointment,
      6: 'NEW^New appointment^HL70276',
      7: 'FOLLOWUP^Follow-up visit^HL70276',
      8: 'NORMAL^Routine appointment^HL70277',
      9: '30',
      10: 'min^minutes^ANS+',
      25: 'Booked',
    }),
    segment('TQ1', { 1: '1', 7: '20240401093000', 8: '20240401100000' }),
    pid(p),
    segment('PV1', { 1: '1', 2: 'O', 3: 'CLINIC^12^^NSH', 19: `${p.visit}S^^^NSHV^VN` }),
    segment('RGS', { 1: '1', 2: 'A' }),
    segment('AIS', { 1: '1', 2: 'A', 3: '99213^Office visit, established patient^C4', 4: '20240401093000', 7: '30', 8: 'min^minutes^ANS+' }),
    segment('AIP', { 1: '1', 2: 'A', 3: ATTENDING, 4: 'ATND^Attending^HL70443', 6: '20240401093000', 9: '30', 10: 'min^minutes^ANS+' }),
    segment('AIL', { 1: '1', 2: 'A', 3: 'CLINIC^12^^NSH^^^^^Clinic 12', 6: '20240401093000', 9: '30', 10: 'min^minutes^ANS+' }),
  ].join('\r');
}

/**
 * ORU^R01 vitals from the ICU bedside monitors (enhanced acknowledgement: MSH-15/16 AL): heart
 * rate, blood pressure and SpO2 for the patient's current visit.
 */
export function vitalsOru(p: TestPatient, options: MessageOptions = {}): string {
  const time = options.time ?? '20240315120000';
  const filler = `VS${p.tag}${time}`;
  return [
    msh('MONITOR', 'ICU', 'ORU^R01^ORU_R01', { ...options, time }, { 15: 'AL', 16: 'AL' }),
    pid(p, { 5: `${p.family}^${p.given}`, 11: '', 13: '', 15: '', 16: '' }),
    segment('PV1', { 1: '1', 2: 'I', 3: 'ICU^12^1^NSH', 19: `${p.visit}^^^NSHV^VN` }),
    segment('OBR', { 1: '1', 3: filler, 4: '85353-1^Vital signs panel^LN', 7: time, 25: 'F' }),
    segment('OBX', { 1: '1', 2: 'NM', 3: '8867-4^Heart rate^LN', 5: '72', 6: '/min^/min^UCUM', 11: 'F', 14: time }),
    segment('OBX', { 1: '2', 2: 'NM', 3: '8480-6^Systolic blood pressure^LN', 5: '118', 6: 'mm[Hg]^mm[Hg]^UCUM', 11: 'F', 14: time }),
    segment('OBX', { 1: '3', 2: 'NM', 3: '8462-4^Diastolic blood pressure^LN', 5: '76', 6: 'mm[Hg]^mm[Hg]^UCUM', 11: 'F', 14: time }),
    segment('OBX', { 1: '4', 2: 'NM', 3: '59408-5^Oxygen saturation in Arterial blood by Pulse oximetry^LN', 5: '97', 6: '%^%^UCUM', 11: 'F', 14: time }),
  ].join('\r');
}

/** A query the hub does not support (answered AR). */
export function unsupportedQuery(options: MessageOptions = {}): string {
  return [msh('EHR', 'NORTHSIDE', 'QRY^A19^QRY_A19', options), segment('QRD', { 1: '20240101', 2: 'R', 3: 'I', 4: 'Q1' })].join('\r');
}

/**
 * @param er7 - A message.
 * @returns Its MSH-10.
 */
export function controlIdOf(er7: string): string {
  return er7.split('\r')[0].split('|')[9];
}
