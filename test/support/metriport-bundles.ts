import { CPT, LOINC, RXNORM, SNOMED, UCUM } from '@medplum/core';
import type {
  Address,
  AllergyIntolerance,
  Bundle,
  BundleEntry,
  CarePlan,
  CodeableConcept,
  Coding,
  Communication,
  Composition,
  CompositionSection,
  Condition,
  Consent,
  ContactPoint,
  Coverage,
  Device,
  DiagnosticReport,
  DocumentReference,
  Encounter,
  Extension,
  FamilyMemberHistory,
  Goal,
  Immunization,
  Location,
  Medication,
  MedicationAdministration,
  MedicationDispense,
  MedicationRequest,
  MedicationStatement,
  Observation,
  Organization,
  Patient,
  Practitioner,
  Procedure,
  Provenance,
  Quantity,
  Reference,
  RelatedPerson,
  Resource,
  ServiceRequest,
} from '@medplum/fhirtypes';
import { Buffer } from 'node:buffer';

/**
 * Realistic Metriport consolidated bundles for tests and benchmarks (facts §6.3): the type mix of
 * Metriport's converter, a reference graph like a converted C-CDA record, Metriport's provenance
 * hints, and the edge cases a consumer must survive. Deterministic for a given seed.
 */

/** Entry counts of the three size tiers in facts §6.3 (sandbox persona, docs example, large record). */
export const BUNDLE_SIZES = { small: 1438, typical: 8714, large: 50000 } as const;

/** Extension naming the source document of a resource. */
export const DOC_ID_EXTENSION_URL = 'https://public.metriport.com/fhir/StructureDefinition/doc-id-extension.json';
/** Extension naming the network a resource came from. */
export const DATA_SOURCE_EXTENSION_URL = 'https://public.metriport.com/fhir/StructureDefinition/data-source.json';

/** The Metriport demographics the Patient entry is rebuilt from (as Metriport's `replacePatient` does). */
export interface ConsolidatedPatientDemographics {
  /** The Metriport patient id: the Patient entry's id and every `Patient/<id>` reference. */
  readonly id: string;
  readonly firstName: string;
  readonly lastName: string;
  /** YYYY-MM-DD. */
  readonly dob: string;
  readonly genderAtBirth: 'M' | 'F' | 'O' | 'U';
  readonly address?: readonly {
    readonly addressLine1: string;
    readonly addressLine2?: string;
    readonly city: string;
    readonly state: string;
    readonly zip: string;
  }[];
  readonly contact?: readonly { readonly phone?: string; readonly email?: string }[];
}

/** A sample patient for tests and benchmarks (fixed Metriport id). */
export const SAMPLE_PATIENT: ConsolidatedPatientDemographics = {
  id: '0195d964-d166-7226-8912-76934c23c140',
  firstName: 'Jane',
  lastName: 'Doe',
  dob: '1980-05-17',
  genderAtBirth: 'F',
  address: [{ addressLine1: '1 Main St', city: 'Chicago', state: 'IL', zip: '60601' }],
  contact: [{ phone: '3125550100', email: 'jane@example.com' }],
};

/** What to generate. */
export interface ConsolidatedBundleOptions {
  readonly patient: ConsolidatedPatientDemographics;
  /** Entries wanted, Patient included: exact from about 100 up (variant 2 within 1 %); tiny requests get the ~40 the edge cases need. */
  readonly resources: number;
  /** PRNG seed (default 1). */
  readonly seed?: number;
  /**
   * 1 (default): a first query. 2: the same record queried again later: about 2 % of the
   * resources gone, about 5 % changed, about 2 % new, and a few pairs merged into one id.
   */
  readonly variant?: 1 | 2;
}

/**
 * Generates a consolidated bundle as Metriport's file holds it: a `searchset` Bundle of
 * `{fullUrl, resource}` entries with relative references, one Patient, and every other resource
 * tied to it. Edge cases included on purpose (each once): a Practitioner and an Organization
 * sharing an id, three references to resources absent from the bundle, a `DocumentReference.date`
 * and an `Observation.issued` holding a bare date (not a valid FHIR instant, as Metriport sends
 * them), a contained Organization referenced as `#id`, upper-case UUID ids and non-UUID ids
 * (`urn:id:` fullUrls). No DocumentReference is preliminary: Metriport filters those out.
 * @param options - Patient, size, seed and variant.
 * @returns The bundle.
 */
export function generateConsolidatedBundle(options: ConsolidatedBundleOptions): Bundle {
  const seed = options.seed ?? 1;
  const counts = planCounts(options.resources);
  const builder = new RecordBuilder(options.patient, seed, counts);
  const resources = builder.build();
  const final = options.variant === 2 ? builder.revise(resources) : resources;
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: final.length,
    entry: final.map(toEntry),
  };
}

/** `urn:uuid:<id>` for a UUID id (either case, as Metriport keeps it), `urn:id:<id>` otherwise. */
function toEntry(resource: Resource): BundleEntry {
  const id = resource.id as string;
  return { fullUrl: UUID_RE.test(id) ? `urn:uuid:${id}` : `urn:id:${id}`, resource };
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// ---------------------------------------------------------------------------------------------
// Type mix

/** Share of each generated type (facts §6.3 table; the trace types share the remaining 1.7 %). */
const TYPE_SHARES = [
  ['Observation', 33],
  ['DiagnosticReport', 10],
  ['Encounter', 10],
  ['Condition', 10],
  ['Practitioner', 8.5],
  ['Procedure', 6],
  ['CarePlan', 5.7],
  ['Organization', 3.2],
  ['RelatedPerson', 1.9],
  ['Medication', 1.9],
  ['Location', 1.6],
  ['MedicationStatement', 1.5],
  ['Composition', 1.2],
  ['MedicationRequest', 0.9],
  ['Device', 0.8],
  ['MedicationAdministration', 0.7],
  ['Immunization', 0.5],
  ['Coverage', 0.4],
  ['Goal', 0.3],
  ['AllergyIntolerance', 0.2],
  ['DocumentReference', 0.5],
  ['Provenance', 0.4],
  ['ServiceRequest', 0.2],
  ['FamilyMemberHistory', 0.2],
  ['Communication', 0.15],
  ['MedicationDispense', 0.15],
  ['Consent', 0.1],
] as const;

/** A generated (non-Patient) type. */
export type GeneratedType = (typeof TYPE_SHARES)[number][0];

/** Expected share (percent of all entries) of each generated type, for tests. */
export const TYPE_SHARE_PERCENT: Readonly<Record<GeneratedType, number>> = Object.fromEntries(TYPE_SHARES) as Record<
  GeneratedType,
  number
>;

/** Types that need a few instances for the edge cases and the reference graph. */
const MINIMUM_COUNTS: Partial<Record<GeneratedType, number>> = {
  Organization: 2,
  Practitioner: 2,
  Encounter: 2,
  Condition: 2,
  Observation: 4,
  DocumentReference: 3,
  Medication: 2,
};

type Counts = Record<GeneratedType, number>;

/**
 * Splits `total - 1` non-Patient entries over the types by largest remainder, then raises the
 * types below their minimum at the expense of the largest (only tiny bundles grow past the
 * requested size).
 */
function planCounts(total: number): Counts {
  const others = Math.max(0, Math.round(total) - 1);
  const sum = TYPE_SHARES.reduce((acc, [, share]) => acc + share, 0);
  const raw = TYPE_SHARES.map(([type, share]) => ({ type, exact: (others * share) / sum }));
  const counts = Object.fromEntries(raw.map((r) => [r.type, Math.floor(r.exact)])) as Counts;
  let left = others - raw.reduce((acc, r) => acc + Math.floor(r.exact), 0);
  for (const r of [...raw].sort((a, b) => b.exact - Math.floor(b.exact) - (a.exact - Math.floor(a.exact)))) {
    if (left <= 0) {
      break;
    }
    counts[r.type]++;
    left--;
  }
  let raised = 0;
  for (const [type] of TYPE_SHARES) {
    const minimum = MINIMUM_COUNTS[type] ?? 1;
    raised += Math.max(0, minimum - counts[type]);
    counts[type] = Math.max(counts[type], minimum);
  }
  // Take what the minimums added from the biggest types, so the total stays as asked.
  for (const [type] of TYPE_SHARES) {
    const spare = Math.min(raised, Math.max(0, counts[type] - (MINIMUM_COUNTS[type] ?? 1) - 1));
    counts[type] -= spare;
    raised -= spare;
  }
  return counts;
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness

/** mulberry32: tiny, fast, and the same sequence on every platform. */
class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 0x6d2b79f5;
  }

  /** @returns A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** @returns An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** @returns A version-4 UUID, lower case. */
  uuid(): string {
    let hex = '';
    for (let i = 0; i < 4; i++) {
      hex += (Math.floor(this.next() * 4294967296) >>> 0).toString(16).padStart(8, '0');
    }
    const variant = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
  }

  /** @param count - How many. @returns That many distinct indexes below `size`. */
  sample(size: number, count: number): number[] {
    const chosen = new Set<number>();
    const wanted = Math.min(size, count);
    while (chosen.size < wanted) {
      chosen.add(Math.floor(this.next() * size));
    }
    return [...chosen];
  }
}

// ---------------------------------------------------------------------------------------------
// Code tables (small, real codes)

// SNOMED, LOINC, RXNORM, CPT and UCUM come from @medplum/core; its ICD10 is not the US -CM edition.
const ICD10 = 'http://hl7.org/fhir/sid/icd-10-cm';
const CVX = 'http://hl7.org/fhir/sid/cvx';
const TERMINOLOGY = 'http://terminology.hl7.org/CodeSystem';

interface LabCode {
  readonly code: string;
  readonly display: string;
  readonly unit: string;
  readonly low: number;
  readonly high: number;
  readonly decimals: number;
}

const LABS: readonly LabCode[] = [
  { code: '2345-7', display: 'Glucose [Mass/volume] in Serum or Plasma', unit: 'mg/dL', low: 70, high: 99, decimals: 0 },
  { code: '2160-0', display: 'Creatinine [Mass/volume] in Serum or Plasma', unit: 'mg/dL', low: 0.6, high: 1.3, decimals: 2 },
  { code: '2951-2', display: 'Sodium [Moles/volume] in Serum or Plasma', unit: 'mmol/L', low: 136, high: 145, decimals: 0 },
  { code: '2823-3', display: 'Potassium [Moles/volume] in Serum or Plasma', unit: 'mmol/L', low: 3.5, high: 5.1, decimals: 1 },
  { code: '2075-0', display: 'Chloride [Moles/volume] in Serum or Plasma', unit: 'mmol/L', low: 98, high: 107, decimals: 0 },
  { code: '3094-0', display: 'Urea nitrogen [Mass/volume] in Serum or Plasma', unit: 'mg/dL', low: 7, high: 20, decimals: 0 },
  { code: '17861-6', display: 'Calcium [Mass/volume] in Serum or Plasma', unit: 'mg/dL', low: 8.6, high: 10.3, decimals: 1 },
  { code: '718-7', display: 'Hemoglobin [Mass/volume] in Blood', unit: 'g/dL', low: 12, high: 17.5, decimals: 1 },
  { code: '4544-3', display: 'Hematocrit [Volume Fraction] of Blood by Automated count', unit: '%', low: 36, high: 50, decimals: 1 },
  { code: '6690-2', display: 'Leukocytes [#/volume] in Blood by Automated count', unit: '10*3/uL', low: 4.5, high: 11, decimals: 1 },
  { code: '777-3', display: 'Platelets [#/volume] in Blood by Automated count', unit: '10*3/uL', low: 150, high: 400, decimals: 0 },
  { code: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood', unit: '%', low: 4, high: 5.6, decimals: 1 },
  { code: '2093-3', display: 'Cholesterol [Mass/volume] in Serum or Plasma', unit: 'mg/dL', low: 125, high: 200, decimals: 0 },
  { code: '2571-8', display: 'Triglyceride [Mass/volume] in Serum or Plasma', unit: 'mg/dL', low: 40, high: 150, decimals: 0 },
  { code: '2085-9', display: 'Cholesterol in HDL [Mass/volume] in Serum or Plasma', unit: 'mg/dL', low: 40, high: 80, decimals: 0 },
  { code: '1742-6', display: 'Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma', unit: 'U/L', low: 7, high: 56, decimals: 0 },
  { code: '3016-3', display: 'Thyrotropin [Units/volume] in Serum or Plasma', unit: 'm[IU]/L', low: 0.4, high: 4, decimals: 2 },
];

const VITALS: readonly LabCode[] = [
  { code: '8480-6', display: 'Systolic blood pressure', unit: 'mm[Hg]', low: 100, high: 150, decimals: 0 },
  { code: '8462-4', display: 'Diastolic blood pressure', unit: 'mm[Hg]', low: 60, high: 95, decimals: 0 },
  { code: '8867-4', display: 'Heart rate', unit: '/min', low: 55, high: 100, decimals: 0 },
  { code: '8310-5', display: 'Body temperature', unit: 'Cel', low: 36.1, high: 37.6, decimals: 1 },
  { code: '29463-7', display: 'Body weight', unit: 'kg', low: 50, high: 110, decimals: 1 },
  { code: '8302-2', display: 'Body height', unit: 'cm', low: 150, high: 195, decimals: 0 },
  { code: '39156-5', display: 'Body mass index (BMI) [Ratio]', unit: 'kg/m2', low: 19, high: 35, decimals: 1 },
  { code: '2708-6', display: 'Oxygen saturation in Arterial blood', unit: '%', low: 93, high: 100, decimals: 0 },
  { code: '9279-1', display: 'Respiratory rate', unit: '/min', low: 12, high: 20, decimals: 0 },
];

const PANELS = [
  { code: '24323-8', display: 'Comprehensive metabolic 2000 panel - Serum or Plasma', category: 'LAB' },
  { code: '58410-2', display: 'CBC panel - Blood by Automated count', category: 'LAB' },
  { code: '57698-3', display: 'Lipid panel with direct LDL - Serum or Plasma', category: 'LAB' },
  { code: '51990-0', display: 'Basic metabolic panel - Blood', category: 'LAB' },
  { code: '36643-5', display: 'XR Chest 2 Views', category: 'RAD' },
] as const;

const CONDITIONS = [
  { snomed: '44054006', display: 'Diabetes mellitus type 2', icd: 'E11.9', icdDisplay: 'Type 2 diabetes mellitus without complications' },
  { snomed: '38341003', display: 'Hypertensive disorder', icd: 'I10', icdDisplay: 'Essential (primary) hypertension' },
  { snomed: '55822004', display: 'Hyperlipidemia', icd: 'E78.5', icdDisplay: 'Hyperlipidemia, unspecified' },
  { snomed: '195967001', display: 'Asthma', icd: 'J45.909', icdDisplay: 'Unspecified asthma, uncomplicated' },
  { snomed: '35489007', display: 'Depressive disorder', icd: 'F32.A', icdDisplay: 'Depression, unspecified' },
  { snomed: '197480006', display: 'Anxiety disorder', icd: 'F41.9', icdDisplay: 'Anxiety disorder, unspecified' },
  { snomed: '235595009', display: 'Gastroesophageal reflux disease', icd: 'K21.9', icdDisplay: 'Gastro-esophageal reflux disease without esophagitis' },
  { snomed: '13645005', display: 'Chronic obstructive lung disease', icd: 'J44.9', icdDisplay: 'Chronic obstructive pulmonary disease, unspecified' },
  { snomed: '68566005', display: 'Urinary tract infectious disease', icd: 'N39.0', icdDisplay: 'Urinary tract infection, site not specified' },
  { snomed: '239873007', display: 'Osteoarthritis of knee', icd: 'M17.9', icdDisplay: 'Osteoarthritis of knee, unspecified' },
  { snomed: '162864005', display: 'Body mass index 30+ - obesity', icd: 'E66.9', icdDisplay: 'Obesity, unspecified' },
  { snomed: '40055000', display: 'Chronic sinusitis', icd: 'J32.9', icdDisplay: 'Chronic sinusitis, unspecified' },
] as const;

const PROCEDURES = [
  { code: '73761001', display: 'Colonoscopy', cpt: '45378' },
  { code: '71651007', display: 'Mammography', cpt: '77067' },
  { code: '80146002', display: 'Appendectomy', cpt: '44950' },
  { code: '430193006', display: 'Medication reconciliation', cpt: '1111F' },
  { code: '274804006', display: 'Evaluation of uterine fundal height', cpt: '59400' },
  { code: '16310003', display: 'Ultrasonography of abdomen', cpt: '76700' },
  { code: '252160004', display: 'Standard chest X-ray', cpt: '71046' },
  { code: '29303009', display: 'Electrocardiographic procedure', cpt: '93000' },
] as const;

const ENCOUNTER_TYPES = [
  { cpt: '99213', display: 'Office or other outpatient visit, established patient, low complexity', cls: 'AMB' },
  { cpt: '99214', display: 'Office or other outpatient visit, established patient, moderate complexity', cls: 'AMB' },
  { cpt: '99203', display: 'Office or other outpatient visit, new patient, low complexity', cls: 'AMB' },
  { cpt: '99285', display: 'Emergency department visit, high complexity', cls: 'EMER' },
  { cpt: '99223', display: 'Initial hospital inpatient care, high complexity', cls: 'IMP' },
] as const;

const ENCOUNTER_CLASSES: Record<string, string> = { AMB: 'ambulatory', EMER: 'emergency', IMP: 'inpatient encounter' };

const MEDICATIONS = [
  { code: '197361', display: 'amlodipine 5 MG Oral Tablet' },
  { code: '314076', display: 'lisinopril 10 MG Oral Tablet' },
  { code: '861007', display: 'metformin hydrochloride 500 MG Oral Tablet' },
  { code: '617310', display: 'atorvastatin 20 MG Oral Tablet' },
  { code: '310965', display: 'ibuprofen 200 MG Oral Tablet' },
  { code: '313782', display: 'acetaminophen 325 MG Oral Tablet' },
  { code: '198211', display: 'simvastatin 40 MG Oral Tablet' },
  { code: '310798', display: 'hydrochlorothiazide 25 MG Oral Tablet' },
  { code: '745679', display: '200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler' },
] as const;

const VACCINES = [
  { code: '140', display: 'Influenza, seasonal, injectable, preservative free' },
  { code: '208', display: 'COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose' },
  { code: '115', display: 'Tdap' },
  { code: '33', display: 'pneumococcal polysaccharide vaccine, 23 valent' },
  { code: '187', display: 'zoster vaccine recombinant' },
  { code: '43', display: 'Hep B, adult' },
] as const;

const ALLERGENS: readonly Coding[] = [
  { system: RXNORM, code: '7980', display: 'Penicillin G' },
  { system: RXNORM, code: '2670', display: 'Codeine' },
  { system: RXNORM, code: '723', display: 'Amoxicillin' },
  { system: SNOMED, code: '256349002', display: 'Peanut - dietary' },
  { system: SNOMED, code: '111088007', display: 'Latex' },
];

const REACTIONS: readonly Coding[] = [
  { system: SNOMED, code: '247472004', display: 'Hives' },
  { system: SNOMED, code: '271807003', display: 'Eruption of skin' },
  { system: SNOMED, code: '422587007', display: 'Nausea' },
  { system: SNOMED, code: '39579001', display: 'Anaphylaxis' },
];

const CARE_ACTIVITIES: readonly Coding[] = [
  { system: SNOMED, code: '229065009', display: 'Exercise therapy' },
  { system: SNOMED, code: '160670007', display: 'Diabetic diet' },
  { system: SNOMED, code: '409063005', display: 'Counseling' },
  { system: SNOMED, code: '183063000', display: 'Low salt diet education' },
  { system: SNOMED, code: '710081004', display: 'Smoking cessation therapy' },
];

const DEVICES: readonly Coding[] = [
  { system: SNOMED, code: '337414009', display: 'Blood glucose meter' },
  { system: SNOMED, code: '14106009', display: 'Cardiac pacemaker' },
  { system: SNOMED, code: '705643001', display: 'Total knee replacement prosthesis' },
  { system: SNOMED, code: '706180003', display: 'Respiratory humidifier' },
];

const RELATIONSHIPS: readonly Coding[] = [
  { system: `${TERMINOLOGY}/v3-RoleCode`, code: 'MTH', display: 'mother' },
  { system: `${TERMINOLOGY}/v3-RoleCode`, code: 'FTH', display: 'father' },
  { system: `${TERMINOLOGY}/v3-RoleCode`, code: 'SPS', display: 'spouse' },
  { system: `${TERMINOLOGY}/v3-RoleCode`, code: 'DAU', display: 'natural daughter' },
  { system: `${TERMINOLOGY}/v3-RoleCode`, code: 'SIB', display: 'sibling' },
];

const SMOKING: readonly Coding[] = [
  { system: SNOMED, code: '266919005', display: 'Never smoked tobacco' },
  { system: SNOMED, code: '8517006', display: 'Ex-smoker' },
  { system: SNOMED, code: '77176002', display: 'Smoker' },
];

const FIRST_NAMES = ['James', 'Mary', 'Robert', 'Patricia', 'John', 'Jennifer', 'Michael', 'Linda', 'David', 'Elizabeth', 'Carlos', 'Maria', 'Wei', 'Aisha', 'Priya', 'Omar'];
const LAST_NAMES = ['Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez', 'Lee', 'Nguyen', 'Patel', 'Kim', 'Okafor', 'Cohen'];
const STREETS = ['Main St', 'Oak Ave', 'Maple Dr', 'Cedar Ln', 'Elm St', 'Washington Blvd', 'Lake Shore Dr', 'Park Ave'];
const CITIES = [
  { city: 'Chicago', state: 'IL', postalCode: '60601' },
  { city: 'Springfield', state: 'IL', postalCode: '62701' },
  { city: 'Boston', state: 'MA', postalCode: '02108' },
  { city: 'Austin', state: 'TX', postalCode: '78701' },
  { city: 'Denver', state: 'CO', postalCode: '80202' },
  { city: 'Seattle', state: 'WA', postalCode: '98101' },
] as const;
const ORGANIZATION_NAMES = ['Lakeside Medical Center', 'Riverside Family Practice', 'Northwest Community Hospital', 'Summit Health Clinic', 'Mercy General Hospital', 'Quest Diagnostics', 'Valley Cardiology Associates', 'Sunrise Urgent Care'];
const PAYER_NAMES = ['Blue Cross Blue Shield of Illinois', 'Aetna', 'UnitedHealthcare', 'Medicare Part B'];
const LOCATION_NAMES = ['Main Campus', 'Outpatient Pavilion', 'Emergency Department', 'Imaging Center', 'Laboratory'];

// ---------------------------------------------------------------------------------------------
// Building

/** A reference whose target type is checked by the generator, not the compiler: assignable to every `Reference<T>`. */
type AnyReference = Reference<never>;

/** A source document: `meta.source` and the doc-id extension of the resources converted from it. */
interface SourceDocument {
  readonly path: string;
  readonly fileName: string;
}

const RECORD_START_MS = Date.UTC(2014, 0, 1);
const RECORD_END_MS = Date.UTC(2024, 11, 31);
const DAY_MS = 86_400_000;

/**
 * Builds one record. Ids of every type are drawn first, so any resource can reference any other;
 * the builders then draw contents. `revise` derives variant 2 from the built record with its own
 * PRNG, so both variants share their ids.
 */
class RecordBuilder {
  private readonly patient: ConsolidatedPatientDemographics;
  private readonly seed: number;
  private readonly counts: Counts;
  private rng: Random;
  private readonly ids = {} as Record<GeneratedType, string[]>;
  private readonly sources: SourceDocument[] = [];
  /** Start time of each Encounter, by index: its Observations and Procedures happen then. */
  private readonly encounterStart: number[] = [];
  private nonUuidCounter = 0;

  constructor(patient: ConsolidatedPatientDemographics, seed: number, counts: Counts) {
    this.patient = patient;
    this.seed = seed;
    this.counts = counts;
    this.rng = new Random(seed);
  }

  private get patientRef(): AnyReference {
    return { reference: `Patient/${this.patient.id}` };
  }

  build(): Resource[] {
    const rng = this.rng;
    const cxId = rng.uuid();
    const documentCount = Math.max(3, Math.round(Object.values(this.counts).reduce((a, b) => a + b, 0) / 60));
    for (let i = 0; i < documentCount; i++) {
      const fileName = `${cxId}_${this.patient.id}_${rng.uuid()}.xml`;
      this.sources.push({ path: `${cxId}/${this.patient.id}/${fileName}`, fileName });
    }
    for (const [type] of TYPE_SHARES) {
      this.ids[type] = Array.from({ length: this.counts[type] }, () => this.newId());
    }
    // Edge case: Metriport ids can repeat across types (the fullUrls then collide too).
    this.ids.Organization[0] = this.ids.Practitioner[0];
    for (let i = 0; i < this.counts.Encounter; i++) {
      this.encounterStart.push(this.randomTime());
    }

    const out: Resource[] = [this.buildPatient()];
    const add = <T extends Resource>(type: GeneratedType, make: (index: number, id: string) => T): void => {
      this.ids[type].forEach((id, index) => out.push(this.stamp(make(index, id))));
    };
    add('Organization', (i, id) => this.organization(i, id));
    add('Practitioner', (i, id) => this.practitioner(i, id));
    add('Location', (i, id) => this.location(i, id));
    add('Medication', (i, id) => this.medication(i, id));
    add('Encounter', (i, id) => this.encounter(i, id));
    add('Condition', (i, id) => this.condition(i, id));
    const labCount = Math.min(Math.floor(this.counts.Observation * 0.75), Math.round(this.counts.DiagnosticReport * 2.5));
    add('Observation', (i, id) => this.observation(i, id, i < labCount));
    const labsPerReport = this.splitLabs(labCount);
    add('DiagnosticReport', (i, id) => this.diagnosticReport(i, id, labsPerReport[i]));
    add('Procedure', (i, id) => this.procedure(i, id));
    add('CarePlan', (i, id) => this.carePlan(i, id));
    add('RelatedPerson', (i, id) => this.relatedPerson(i, id));
    add('MedicationStatement', (i, id) => this.medicationStatement(i, id));
    add('MedicationRequest', (i, id) => this.medicationRequest(i, id));
    add('MedicationAdministration', (i, id) => this.medicationAdministration(i, id));
    add('MedicationDispense', (i, id) => this.medicationDispense(i, id));
    add('Device', (i, id) => this.device(i, id));
    add('Immunization', (i, id) => this.immunization(i, id));
    add('Coverage', (i, id) => this.coverage(i, id));
    add('Goal', (i, id) => this.goal(i, id));
    add('AllergyIntolerance', (i, id) => this.allergy(i, id));
    add('FamilyMemberHistory', (i, id) => this.familyHistory(i, id));
    add('Communication', (i, id) => this.communication(i, id));
    add('ServiceRequest', (i, id) => this.serviceRequest(i, id));
    add('Consent', (i, id) => this.consent(i, id));
    add('DocumentReference', (i, id) => this.documentReference(i, id));
    add('Composition', (i, id) => this.composition(i, id));
    add('Provenance', (i, id) => this.provenance(i, id));
    return out;
  }

  /**
   * Variant 2, the same record queried later: drops about 2 % (only resources nothing references,
   * as Metriport's hydration keeps referenced ones), merges a few pairs of duplicates into the
   * first id (references to the second repointed), changes about 5 %, adds about 2 % new.
   * @param resources - Variant 1, changed in place.
   * @returns Variant 2.
   */
  revise(resources: Resource[]): Resource[] {
    const rng = new Random(this.seed ^ 0x5bd1e995);
    this.rng = rng;
    const total = resources.length;
    const referenced = new Set<string>();
    for (const resource of resources) {
      forEachReference(resource, (ref) => referenced.add(ref.reference as string));
    }
    const key = (r: Resource): string => `${r.resourceType}/${r.id}`;
    const removed = new Set<string>();
    const collisionId = this.ids.Practitioner[0];

    // Merges: the second of each pair disappears; what pointed at it now points at the first.
    const repoint = new Map<string, string>();
    const mergeCount = Math.min(10, Math.max(2, Math.round(total / 2000)));
    for (let m = 0; m < mergeCount; m++) {
      const type = (['Practitioner', 'Condition', 'Medication'] as const)[m % 3];
      const pool = this.ids[type].filter((id) => id !== collisionId && !removed.has(`${type}/${id}`) && !repoint.has(`${type}/${id}`));
      if (pool.length < 4) {
        continue;
      }
      const [a, b] = rng.sample(pool.length, 2).map((i) => pool[i]);
      if ([...repoint.values()].includes(`${type}/${b}`)) {
        continue;
      }
      repoint.set(`${type}/${b}`, `${type}/${a}`);
      removed.add(`${type}/${b}`);
    }

    // Drops: unreferenced resources only (never the Patient).
    const droppable = resources.filter((r) => r.resourceType !== 'Patient' && !referenced.has(key(r)) && !removed.has(key(r)));
    for (const index of rng.sample(droppable.length, Math.round(total * 0.02))) {
      removed.add(key(droppable[index]));
    }

    let kept = resources.filter((r) => !removed.has(key(r)));
    for (const resource of kept) {
      forEachReference(resource, (ref) => {
        const target = repoint.get(ref.reference as string);
        if (target) {
          ref.reference = target;
        }
      });
    }

    // Changes: a value or a status moved on, as a later conversion of newer documents shows.
    const changeable = kept.filter((r) => CHANGEABLE.has(r.resourceType));
    for (const index of rng.sample(changeable.length, Math.round(total * 0.05))) {
      this.change(changeable[index]);
    }

    // New: resources from documents that arrived since, referencing surviving resources only.
    for (const [type] of TYPE_SHARES) {
      this.ids[type] = this.ids[type].filter((id) => !removed.has(`${type}/${id}`));
    }
    const fresh: Resource[] = [];
    const newCount = Math.max(3, Math.round(total * 0.02));
    for (let i = 0; i < newCount; i++) {
      const id = this.newId();
      const kind = i % 10;
      if (kind < 6) {
        fresh.push(this.stamp(this.observation(rng.int(2, 1_000_000), id, false)));
      } else if (kind < 8) {
        fresh.push(this.stamp(this.condition(this.counts.Condition + i, id)));
      } else {
        fresh.push(this.stamp(this.procedure(i, id)));
      }
    }
    kept = kept.concat(fresh);
    return kept;
  }

  private change(resource: Resource): void {
    const rng = this.rng;
    switch (resource.resourceType) {
      case 'Observation':
        if (resource.valueQuantity?.value !== undefined) {
          resource.valueQuantity.value = round(resource.valueQuantity.value * (1 + rng.pick([-0.08, -0.05, 0.05, 0.08])), 2);
        }
        resource.status = resource.status === 'amended' ? 'corrected' : 'amended';
        break;
      case 'Condition':
        resource.clinicalStatus = concept(`${TERMINOLOGY}/condition-clinical`, 'resolved', 'Resolved');
        resource.abatementDateTime = this.instant(this.randomTime());
        break;
      case 'Encounter':
        if (resource.status === 'in-progress') {
          resource.status = 'finished';
        } else if (resource.period?.end) {
          resource.period = { ...resource.period, end: this.instant(Date.parse(resource.period.end) + DAY_MS) };
        }
        break;
      case 'MedicationStatement':
        resource.status = resource.status === 'completed' ? 'stopped' : 'completed';
        break;
      case 'MedicationRequest':
        resource.status = resource.status === 'stopped' ? 'completed' : 'stopped';
        break;
      case 'CarePlan':
        resource.status = resource.status === 'completed' ? 'revoked' : 'completed';
        break;
      case 'DiagnosticReport':
        resource.status = 'amended';
        resource.conclusion = 'Addendum: results reviewed with the patient.';
        break;
      case 'Procedure':
        resource.note = [{ text: 'Updated from a later visit summary.' }];
        break;
      case 'AllergyIntolerance':
        resource.criticality = resource.criticality === 'high' ? 'low' : 'high';
        break;
      case 'Goal':
        resource.lifecycleStatus = 'completed';
        resource.achievementStatus = concept(`${TERMINOLOGY}/goal-achievement`, 'achieved', 'Achieved');
        break;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Shared pieces

  /** 98 % lower-case UUIDs, 1 % upper-case UUIDs, 1 % OID-like ids (fullUrl `urn:id:`). */
  private newId(): string {
    const roll = this.rng.next();
    if (roll < 0.01) {
      return this.rng.uuid().toUpperCase();
    }
    if (roll < 0.02) {
      return `2.16.840.1.113883.3.9621.${++this.nonUuidCounter}.${this.rng.int(1000, 99999)}`;
    }
    return this.rng.uuid();
  }

  /** Metriport's provenance hints: `meta.source` always, doc-id on most, data-source on some. */
  private stamp<T extends Resource>(resource: T): T {
    const source = this.rng.pick(this.sources);
    const extension: Extension[] = [];
    if (this.rng.chance(0.95)) {
      extension.push({ url: DOC_ID_EXTENSION_URL, valueString: source.fileName });
    }
    if (this.rng.chance(0.2)) {
      const network = this.rng.chance(0.5) ? 'COMMONWELL' : 'CAREQUALITY';
      extension.push({ url: DATA_SOURCE_EXTENSION_URL, valueCoding: { system: DATA_SOURCE_EXTENSION_URL, code: network } });
    }
    const stamped = { resourceType: resource.resourceType, id: resource.id, meta: { source: source.path } } as Record<string, unknown>;
    if (extension.length) {
      stamped.extension = extension;
    }
    for (const [name, value] of Object.entries(resource)) {
      if (name !== 'resourceType' && name !== 'id') {
        stamped[name] = value;
      }
    }
    return stamped as T;
  }

  private ref(type: GeneratedType, index?: number, display?: string): AnyReference {
    const pool = this.ids[type];
    const id = pool[index === undefined ? Math.floor(this.rng.next() * pool.length) : index % pool.length];
    return display ? { reference: `${type}/${id}`, display } : { reference: `${type}/${id}` };
  }

  private randomTime(): number {
    return RECORD_START_MS + Math.floor(this.rng.next() * ((RECORD_END_MS - RECORD_START_MS) / 60_000)) * 60_000;
  }

  private instant(ms: number): string {
    return new Date(ms).toISOString();
  }

  private date(ms: number): string {
    return new Date(ms).toISOString().slice(0, 10);
  }

  private encounterIndex(): number {
    return this.rng.int(0, this.counts.Encounter - 1);
  }

  private address(): Address {
    const place = this.rng.pick(CITIES);
    return { use: 'work', line: [`${this.rng.int(10, 9999)} ${this.rng.pick(STREETS)}`], ...place, country: 'USA' };
  }

  private phone(): ContactPoint {
    return { system: 'phone', value: `${this.rng.int(201, 989)}${this.rng.int(200, 999)}${String(this.rng.int(0, 9999)).padStart(4, '0')}`, use: 'work' };
  }

  private sourceIdentifier(): { system: string; value: string } {
    return { system: `urn:oid:1.2.840.114350.1.13.${this.rng.int(100, 999)}.2.7.3.688884.100`, value: String(this.rng.int(100000, 99999999)) };
  }

  // -------------------------------------------------------------------------------------------
  // Resources

  private buildPatient(): Patient {
    const p = this.patient;
    const gender = ({ M: 'male', F: 'female', O: 'other', U: 'unknown' } as const)[p.genderAtBirth];
    const telecom: ContactPoint[] = [];
    for (const c of p.contact ?? []) {
      if (c.phone) {
        telecom.push({ system: 'phone', value: c.phone });
      }
      if (c.email) {
        telecom.push({ system: 'email', value: c.email });
      }
    }
    const patient: Patient = {
      resourceType: 'Patient',
      id: p.id,
      name: [{ family: p.lastName, given: p.firstName.split(/[\s,]+/).filter(Boolean) }],
      gender,
      birthDate: p.dob,
    };
    if (p.address?.length) {
      patient.address = p.address.map((a) => ({
        line: a.addressLine2 ? [a.addressLine1, a.addressLine2] : [a.addressLine1],
        city: a.city,
        state: a.state,
        postalCode: a.zip,
        country: 'USA',
      }));
    }
    if (telecom.length) {
      patient.telecom = telecom;
    }
    return patient;
  }

  private organization(index: number, id: string): Organization {
    const payer = index % 7 === 6;
    return {
      resourceType: 'Organization',
      id,
      identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: String(1_000_000_000 + this.rng.int(0, 899_999_999)) }],
      active: true,
      type: [concept(`${TERMINOLOGY}/organization-type`, payer ? 'pay' : 'prov', payer ? 'Payer' : 'Healthcare Provider')],
      name: payer ? this.rng.pick(PAYER_NAMES) : this.rng.pick(ORGANIZATION_NAMES),
      telecom: [this.phone()],
      address: [this.address()],
    };
  }

  private practitioner(_index: number, id: string): Practitioner {
    return {
      resourceType: 'Practitioner',
      id,
      identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: String(1_000_000_000 + this.rng.int(0, 899_999_999)) }],
      name: [{ family: this.rng.pick(LAST_NAMES), given: [this.rng.pick(FIRST_NAMES)], suffix: [this.rng.pick(['MD', 'DO', 'NP', 'PA'])] }],
      telecom: [this.phone()],
      address: [this.address()],
    };
  }

  private location(index: number, id: string): Location {
    return {
      resourceType: 'Location',
      id,
      status: 'active',
      name: `${this.rng.pick(ORGANIZATION_NAMES)} - ${this.rng.pick(LOCATION_NAMES)}`,
      mode: 'instance',
      address: this.address(),
      managingOrganization: this.ref('Organization', index + 1),
    };
  }

  private medication(_index: number, id: string): Medication {
    const med = this.rng.pick(MEDICATIONS);
    return {
      resourceType: 'Medication',
      id,
      code: { text: med.display, coding: [{ system: RXNORM, code: med.code, display: med.display }] },
      status: 'active',
    };
  }

  private encounter(index: number, id: string): Encounter {
    const type = this.rng.pick(ENCOUNTER_TYPES);
    const start = this.encounterStart[index];
    const length = type.cls === 'IMP' ? this.rng.int(1, 6) * DAY_MS : this.rng.int(15, 90) * 60_000;
    const encounter: Encounter = {
      resourceType: 'Encounter',
      id,
      identifier: [this.sourceIdentifier()],
      status: this.rng.chance(0.97) ? 'finished' : 'in-progress',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: type.cls, display: ENCOUNTER_CLASSES[type.cls] },
      type: [{ text: type.display, coding: [{ system: CPT, code: type.cpt, display: type.display }] }],
      subject: this.patientRef,
      participant: [
        {
          type: [concept(`${TERMINOLOGY}/v3-ParticipationType`, 'ATND', 'attender')],
          individual: this.ref('Practitioner'),
        },
      ],
      period: { start: this.instant(start), end: this.instant(start + length) },
      location: [{ location: this.ref('Location') }],
      serviceProvider: this.ref('Organization'),
    };
    // Encounters and Conditions point at each other (diagnosis / encounter): a reference cycle.
    if (index % 3 === 0 && index / 3 < this.counts.Condition) {
      encounter.diagnosis = [{ condition: this.ref('Condition', index / 3), use: concept(`${TERMINOLOGY}/diagnosis-role`, 'DD', 'Discharge diagnosis'), rank: 1 }];
    }
    // Edge case: a clinician Metriport never sent (twice) - the reference dangles.
    if (index < 2) {
      encounter.participant?.push({ individual: { reference: `Practitioner/${this.rng.uuid()}`, display: 'Referring physician' } });
    }
    return encounter;
  }

  private condition(index: number, id: string): Condition {
    const c = this.rng.pick(CONDITIONS);
    const onset = this.randomTime();
    const condition: Condition = {
      resourceType: 'Condition',
      id,
      identifier: [this.sourceIdentifier()],
      clinicalStatus: concept(`${TERMINOLOGY}/condition-clinical`, 'active', 'Active'),
      verificationStatus: concept(`${TERMINOLOGY}/condition-ver-status`, 'confirmed', 'Confirmed'),
      category: [
        index % 2 === 0
          ? concept(`${TERMINOLOGY}/condition-category`, 'problem-list-item', 'Problem List Item')
          : concept(`${TERMINOLOGY}/condition-category`, 'encounter-diagnosis', 'Encounter Diagnosis'),
      ],
      code: {
        text: c.display,
        coding: [
          { system: SNOMED, code: c.snomed, display: c.display },
          { system: ICD10, code: c.icd, display: c.icdDisplay },
        ],
      },
      subject: this.patientRef,
      onsetDateTime: this.instant(onset),
      recordedDate: this.instant(onset + this.rng.int(0, 30) * DAY_MS),
    };
    const encounterIndex = index * 3;
    if (encounterIndex < this.counts.Encounter) {
      condition.encounter = this.ref('Encounter', encounterIndex);
    }
    return condition;
  }

  private observation(index: number, id: string, lab: boolean): Observation {
    const rng = this.rng;
    const encounterIndex = this.encounterIndex();
    const when = this.encounterStart[encounterIndex] ?? this.randomTime();
    const status = rng.chance(0.95) ? 'final' : 'preliminary';
    if (!lab && index % 10 === 9) {
      return {
        resourceType: 'Observation',
        id,
        status,
        category: [concept(`${TERMINOLOGY}/observation-category`, 'social-history', 'Social History')],
        code: { text: 'Tobacco smoking status', coding: [{ system: LOINC, code: '72166-2', display: 'Tobacco smoking status' }] },
        subject: this.patientRef,
        effectiveDateTime: this.instant(when),
        valueCodeableConcept: { coding: [rng.pick(SMOKING)] },
      };
    }
    const spec = rng.pick(lab ? LABS : VITALS);
    const value = round(spec.low + (spec.high - spec.low) * (rng.next() * 1.3 - 0.15), spec.decimals);
    const observation: Observation = {
      resourceType: 'Observation',
      id,
      status,
      category: [
        lab
          ? concept(`${TERMINOLOGY}/observation-category`, 'laboratory', 'Laboratory')
          : concept(`${TERMINOLOGY}/observation-category`, 'vital-signs', 'Vital Signs'),
      ],
      code: { text: spec.display, coding: [{ system: LOINC, code: spec.code, display: spec.display }] },
      subject: this.patientRef,
    };
    observation.encounter = this.ref('Encounter', encounterIndex);
    observation.effectiveDateTime = this.instant(when);
    observation.issued = this.instant(when + rng.int(1, 48) * 3_600_000);
    observation.valueQuantity = quantity(value, spec.unit);
    if (lab) {
      observation.interpretation = [
        value < spec.low
          ? concept(`${TERMINOLOGY}/v3-ObservationInterpretation`, 'L', 'Low')
          : value > spec.high
            ? concept(`${TERMINOLOGY}/v3-ObservationInterpretation`, 'H', 'High')
            : concept(`${TERMINOLOGY}/v3-ObservationInterpretation`, 'N', 'Normal'),
      ];
      observation.referenceRange = [{ low: quantity(spec.low, spec.unit), high: quantity(spec.high, spec.unit) }];
    }
    if (rng.chance(0.6)) {
      observation.performer = [this.ref('Practitioner')];
    }
    // Edge case: `issued` is an instant in FHIR; Metriport sometimes sends a bare date there.
    if (index === 0 && lab) {
      observation.issued = this.date(when);
    }
    // Edge case: a performing lab that is not in the bundle.
    if (index === 1) {
      observation.performer = [{ reference: `Organization/${this.rng.uuid()}`, display: 'Reference Laboratory' }];
    }
    return observation;
  }

  /** @returns For each DiagnosticReport, the indexes of the lab Observations it reports (0 to 4 each). */
  private splitLabs(labCount: number): number[][] {
    const perReport: number[][] = [];
    let next = 0;
    for (let i = 0; i < this.counts.DiagnosticReport; i++) {
      const take = Math.min(this.rng.int(1, 4), labCount - next);
      perReport.push(Array.from({ length: Math.max(0, take) }, (_, k) => next + k));
      next += Math.max(0, take);
    }
    return perReport;
  }

  private diagnosticReport(_index: number, id: string, results: number[]): DiagnosticReport {
    const panel = this.rng.pick(PANELS);
    const encounterIndex = this.encounterIndex();
    const when = this.encounterStart[encounterIndex];
    const report: DiagnosticReport = {
      resourceType: 'DiagnosticReport',
      id,
      identifier: [this.sourceIdentifier()],
      status: 'final',
      category: [concept(`${TERMINOLOGY}/v2-0074`, panel.category, panel.category === 'LAB' ? 'Laboratory' : 'Radiology')],
      code: { text: panel.display, coding: [{ system: LOINC, code: panel.code, display: panel.display }] },
      subject: this.patientRef,
      encounter: this.ref('Encounter', encounterIndex),
      effectiveDateTime: this.instant(when),
      issued: this.instant(when + this.rng.int(2, 72) * 3_600_000),
      performer: [this.rng.chance(0.5) ? this.ref('Organization') : this.ref('Practitioner')],
    };
    if (results.length) {
      report.result = results.map((i) => this.ref('Observation', i));
    } else {
      report.conclusion = 'No acute cardiopulmonary process.';
    }
    return report;
  }

  private procedure(_index: number, id: string): Procedure {
    const p = this.rng.pick(PROCEDURES);
    const encounterIndex = this.encounterIndex();
    return {
      resourceType: 'Procedure',
      id,
      identifier: [this.sourceIdentifier()],
      status: 'completed',
      code: {
        text: p.display,
        coding: [
          { system: SNOMED, code: p.code, display: p.display },
          { system: CPT, code: p.cpt },
        ],
      },
      subject: this.patientRef,
      encounter: this.ref('Encounter', encounterIndex),
      performedDateTime: this.instant(this.encounterStart[encounterIndex]),
      performer: [{ actor: this.ref('Practitioner') }],
      location: this.ref('Location'),
    };
  }

  private carePlan(_index: number, id: string): CarePlan {
    const activity = this.rng.pick(CARE_ACTIVITIES);
    const active = this.rng.chance(0.6);
    return {
      resourceType: 'CarePlan',
      id,
      status: active ? 'active' : 'completed',
      intent: 'plan',
      category: [concept('http://hl7.org/fhir/us/core/CodeSystem/careplan-category', 'assess-plan', 'Assessment and Plan of Treatment')],
      description: activity.display,
      subject: this.patientRef,
      encounter: this.ref('Encounter'),
      period: { start: this.instant(this.randomTime()) },
      activity: [{ detail: { status: active ? 'in-progress' : 'completed', code: { coding: [activity], text: activity.display } } }],
    };
  }

  private relatedPerson(_index: number, id: string): RelatedPerson {
    return {
      resourceType: 'RelatedPerson',
      id,
      active: true,
      patient: this.patientRef,
      relationship: [{ coding: [this.rng.pick(RELATIONSHIPS)] }],
      name: [{ family: this.rng.pick(LAST_NAMES), given: [this.rng.pick(FIRST_NAMES)] }],
      telecom: [{ ...this.phone(), use: 'home' }],
    };
  }

  private medicationStatement(index: number, id: string): MedicationStatement {
    const start = this.randomTime();
    return {
      resourceType: 'MedicationStatement',
      id,
      identifier: [this.sourceIdentifier()],
      status: this.rng.chance(0.7) ? 'active' : 'completed',
      medicationReference: this.ref('Medication', index),
      subject: this.patientRef,
      effectivePeriod: { start: this.instant(start) },
      dateAsserted: this.instant(start),
      dosage: [{ text: 'Take 1 tablet by mouth once daily' }],
    };
  }

  private medicationRequest(index: number, id: string): MedicationRequest {
    return {
      resourceType: 'MedicationRequest',
      id,
      identifier: [this.sourceIdentifier()],
      status: this.rng.chance(0.7) ? 'active' : 'completed',
      intent: 'order',
      medicationReference: this.ref('Medication', index + 1),
      subject: this.patientRef,
      encounter: this.ref('Encounter'),
      authoredOn: this.instant(this.randomTime()),
      requester: this.ref('Practitioner'),
      dosageInstruction: [
        {
          text: 'Take 1 tablet by mouth daily',
          timing: { repeat: { frequency: 1, period: 1, periodUnit: 'd' } },
          doseAndRate: [{ doseQuantity: { value: 1, unit: 'tablet', system: UCUM, code: '{tbl}' } }],
        },
      ],
      dispenseRequest: { numberOfRepeatsAllowed: 3, quantity: { value: 30, unit: 'tablet', system: UCUM, code: '{tbl}' } },
    };
  }

  private medicationAdministration(index: number, id: string): MedicationAdministration {
    const encounterIndex = this.encounterIndex();
    return {
      resourceType: 'MedicationAdministration',
      id,
      status: 'completed',
      medicationReference: this.ref('Medication', index + 2),
      subject: this.patientRef,
      context: this.ref('Encounter', encounterIndex),
      effectiveDateTime: this.instant(this.encounterStart[encounterIndex]),
      performer: [{ actor: this.ref('Practitioner') }],
      dosage: { text: '1 tablet by mouth', dose: { value: 1, unit: 'tablet', system: UCUM, code: '{tbl}' } },
    };
  }

  private medicationDispense(index: number, id: string): MedicationDispense {
    const handed = this.randomTime();
    return {
      resourceType: 'MedicationDispense',
      id,
      status: 'completed',
      medicationReference: this.ref('Medication', index),
      subject: this.patientRef,
      performer: [{ actor: this.ref('Organization') }],
      authorizingPrescription: [this.ref('MedicationRequest', index)],
      quantity: { value: 30, unit: 'tablet', system: UCUM, code: '{tbl}' },
      daysSupply: { value: 30, unit: 'day', system: UCUM, code: 'd' },
      whenPrepared: this.instant(handed - 3_600_000),
      whenHandedOver: this.instant(handed),
    };
  }

  private device(_index: number, id: string): Device {
    const type = this.rng.pick(DEVICES);
    return {
      resourceType: 'Device',
      id,
      status: 'active',
      deviceName: [{ name: type.display as string, type: 'user-friendly-name' }],
      type: { coding: [type], text: type.display },
      patient: this.patientRef,
    };
  }

  private immunization(_index: number, id: string): Immunization {
    const vaccine = this.rng.pick(VACCINES);
    return {
      resourceType: 'Immunization',
      id,
      identifier: [this.sourceIdentifier()],
      status: 'completed',
      vaccineCode: { text: vaccine.display, coding: [{ system: CVX, code: vaccine.code, display: vaccine.display }] },
      patient: this.patientRef,
      occurrenceDateTime: this.instant(this.randomTime()),
      primarySource: true,
      lotNumber: `${String.fromCharCode(65 + this.rng.int(0, 25))}${this.rng.int(10000, 99999)}`,
      performer: [{ actor: this.rng.chance(0.5) ? this.ref('Practitioner') : this.ref('Organization') }],
    };
  }

  private coverage(_index: number, id: string): Coverage {
    const start = this.randomTime();
    return {
      resourceType: 'Coverage',
      id,
      status: 'active',
      type: concept('http://terminology.hl7.org/CodeSystem/v3-ActCode', 'HIP', 'health insurance plan policy'),
      subscriberId: `XQH${this.rng.int(100000000, 999999999)}`,
      beneficiary: this.patientRef,
      relationship: concept(`${TERMINOLOGY}/subscriber-relationship`, 'self', 'Self'),
      period: { start: this.date(start) },
      payor: [this.ref('Organization')],
    };
  }

  private goal(_index: number, id: string): Goal {
    const start = this.randomTime();
    return {
      resourceType: 'Goal',
      id,
      lifecycleStatus: 'active',
      description: { text: this.rng.pick(['Lose 10 pounds', 'HbA1c below 7 %', 'Blood pressure below 130/80', 'Walk 30 minutes a day']) },
      subject: this.patientRef,
      startDate: this.date(start),
      target: [{ dueDate: this.date(start + 180 * DAY_MS) }],
    };
  }

  private allergy(_index: number, id: string): AllergyIntolerance {
    const allergen = this.rng.pick(ALLERGENS);
    return {
      resourceType: 'AllergyIntolerance',
      id,
      identifier: [this.sourceIdentifier()],
      clinicalStatus: concept(`${TERMINOLOGY}/allergyintolerance-clinical`, 'active', 'Active'),
      verificationStatus: concept(`${TERMINOLOGY}/allergyintolerance-verification`, 'confirmed', 'Confirmed'),
      type: 'allergy',
      category: [allergen.system === RXNORM ? 'medication' : 'food'],
      criticality: this.rng.chance(0.3) ? 'high' : 'low',
      code: { coding: [allergen], text: allergen.display },
      patient: this.patientRef,
      onsetDateTime: this.instant(this.randomTime()),
      reaction: [{ manifestation: [{ coding: [this.rng.pick(REACTIONS)] }], severity: this.rng.pick(['mild', 'moderate', 'severe'] as const) }],
    };
  }

  private familyHistory(_index: number, id: string): FamilyMemberHistory {
    const c = this.rng.pick(CONDITIONS);
    return {
      resourceType: 'FamilyMemberHistory',
      id,
      status: 'completed',
      patient: this.patientRef,
      date: this.date(this.randomTime()),
      relationship: { coding: [this.rng.pick(RELATIONSHIPS)] },
      condition: [{ code: { coding: [{ system: SNOMED, code: c.snomed, display: c.display }], text: c.display } }],
    };
  }

  private communication(_index: number, id: string): Communication {
    return {
      resourceType: 'Communication',
      id,
      status: 'completed',
      subject: this.patientRef,
      sent: this.instant(this.randomTime()),
      sender: this.ref('Practitioner'),
      recipient: [this.patientRef],
      payload: [{ contentString: 'Your lab results are available. Please schedule a follow-up visit.' }],
    };
  }

  private serviceRequest(_index: number, id: string): ServiceRequest {
    const p = this.rng.pick(PROCEDURES);
    return {
      resourceType: 'ServiceRequest',
      id,
      status: this.rng.chance(0.5) ? 'active' : 'completed',
      intent: 'order',
      code: { coding: [{ system: SNOMED, code: p.code, display: p.display }], text: p.display },
      subject: this.patientRef,
      encounter: this.ref('Encounter'),
      authoredOn: this.instant(this.randomTime()),
      requester: this.ref('Practitioner'),
    };
  }

  private consent(_index: number, id: string): Consent {
    return {
      resourceType: 'Consent',
      id,
      status: 'active',
      scope: concept(`${TERMINOLOGY}/consentscope`, 'patient-privacy', 'Privacy Consent'),
      category: [{ coding: [{ system: LOINC, code: '59284-0', display: 'Patient Consent' }] }],
      patient: this.patientRef,
      dateTime: this.instant(this.randomTime()),
      organization: [this.ref('Organization')],
      policyRule: concept('http://terminology.hl7.org/CodeSystem/v3-ActCode', 'OPTIN', 'opt-in'),
    };
  }

  private documentReference(index: number, id: string): DocumentReference {
    const when = this.randomTime();
    const encounterIndex = this.encounterIndex();
    const doc: DocumentReference = {
      resourceType: 'DocumentReference',
      id,
      masterIdentifier: { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${this.rng.uuid()}` },
      status: 'current',
      docStatus: 'final',
      type: { coding: [{ system: LOINC, code: '34133-9', display: 'Summary of episode note' }], text: 'Summary of episode note' },
      category: [concept('http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category', 'clinical-note', 'Clinical Note')],
      subject: this.patientRef,
      date: this.instant(when),
      author: [this.ref('Practitioner')],
      description: 'Continuity of Care Document',
      content: [],
      context: { encounter: [this.ref('Encounter', encounterIndex)], period: { start: this.instant(this.encounterStart[encounterIndex]) } },
    };
    if (index % 2 === 0) {
      const text = `Visit note for ${this.patient.firstName} ${this.patient.lastName}. Follow up in 3 months.`;
      doc.content = [{ attachment: { contentType: 'text/plain', data: Buffer.from(text, 'utf8').toString('base64'), title: 'Visit note' } }];
    } else {
      const source = this.rng.pick(this.sources);
      doc.content = [
        {
          attachment: {
            contentType: 'application/xml',
            url: `https://api.metriport.com/doc-contribution/commonwell/?fileName=${encodeURIComponent(source.path)}`,
            title: source.fileName,
            size: this.rng.int(20_000, 900_000),
            creation: this.instant(when),
          },
          format: { system: 'urn:oid:1.3.6.1.4.1.19376.1.2.3', code: 'urn:hl7-org:sdwg:ccda-structuredBody:2.1' },
        },
      ];
    }
    // Edge case: `date` is an instant in FHIR; Metriport sometimes sends a bare date.
    if (index === 0) {
      doc.date = this.date(when);
    }
    // Edge case: the author is a contained Organization referenced as `#id`.
    if (index === 1) {
      doc.contained = [{ resourceType: 'Organization', id: 'author-org', name: this.rng.pick(ORGANIZATION_NAMES) }];
      doc.author = [{ reference: '#author-org' }];
    }
    return doc;
  }

  private composition(index: number, id: string): Composition {
    const sections: CompositionSection[] = [];
    const entriesOf = (type: GeneratedType, max: number): AnyReference[] => {
      const pool = this.ids[type];
      return pool.length ? this.rng.sample(pool.length, Math.min(max, this.rng.int(1, max))).map((i) => this.ref(type, i)) : [];
    };
    const problems = entriesOf('Condition', 4);
    if (problems.length) {
      sections.push({ title: 'Problems', code: { coding: [{ system: LOINC, code: '11450-4', display: 'Problem list - Reported' }] }, entry: problems });
    }
    const meds = entriesOf('MedicationStatement', 3);
    if (meds.length) {
      sections.push({ title: 'Medications', code: { coding: [{ system: LOINC, code: '10160-0', display: 'History of Medication use Narrative' }] }, entry: meds });
    }
    const results = entriesOf('DiagnosticReport', 3);
    if (results.length) {
      sections.push({ title: 'Results', code: { coding: [{ system: LOINC, code: '30954-2', display: 'Relevant diagnostic tests/laboratory data Narrative' }] }, entry: results });
    }
    return {
      resourceType: 'Composition',
      id,
      // A Composition has at most one identifier (not an array).
      identifier: { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${this.rng.uuid()}` },
      status: 'final',
      type: { coding: [{ system: LOINC, code: '34133-9', display: 'Summary of episode note' }] },
      subject: this.patientRef,
      encounter: this.ref('Encounter', index),
      date: this.instant(this.randomTime()),
      author: [this.ref('Practitioner')],
      title: 'Continuity of Care Document',
      section: sections,
    };
  }

  private provenance(index: number, id: string): Provenance {
    const types: GeneratedType[] = ['Condition', 'Observation', 'Encounter', 'MedicationStatement', 'Procedure'];
    const targets = Array.from({ length: this.rng.int(1, 3) }, (_, k) => this.ref(types[(index + k) % types.length]));
    // No identifier: Provenance has none in FHIR R4.
    return {
      resourceType: 'Provenance',
      id,
      target: targets,
      recorded: this.instant(this.randomTime()),
      agent: [{ type: concept(`${TERMINOLOGY}/provenance-participant-type`, 'author', 'Author'), who: this.ref('Organization') }],
    };
  }
}

/** Types variant 2 changes (a value or a status). */
const CHANGEABLE: ReadonlySet<string> = new Set([
  'Observation',
  'Condition',
  'Encounter',
  'MedicationStatement',
  'MedicationRequest',
  'CarePlan',
  'DiagnosticReport',
  'Procedure',
  'AllergyIntolerance',
  'Goal',
]);

function concept(system: string, code: string, display: string): CodeableConcept {
  return { coding: [{ system, code, display }], text: display };
}

function quantity(value: number, unit: string): Quantity {
  return { value, unit, system: UCUM, code: unit };
}

function round(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}

/**
 * Calls `visit` on every Reference with a `reference` string inside a resource (contained
 * resources included), so callers can read or rewrite them.
 * @param value - A resource or any part of one.
 * @param visit - Called with each reference object.
 */
export function forEachReference(value: unknown, visit: (reference: Reference) => void): void {
  if (Array.isArray(value)) {
    for (const item of value) {
      forEachReference(item, visit);
    }
  } else if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (typeof record.reference === 'string') {
      visit(record as Reference);
    }
    for (const key in record) {
      const child = record[key];
      if (child && typeof child === 'object') {
        forEachReference(child, visit);
      }
    }
  }
}
