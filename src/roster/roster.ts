import type { Address, CodeableConcept, ContactPoint, Coverage, CoverageClass, HumanName, Identifier, Patient } from '@medplum/fhirtypes';
import { HUB_SID } from '../constants.ts';
import type { MessageHeaderInfo } from '../hl7/message.ts';
import { EMPTY_MESSAGE_HEADER } from '../hl7/message.ts';
import type { MappingConfig } from '../mapping/context.ts';
import { MappingContext, slug } from '../mapping/context.ts';
import { identifierType } from '../mapping/datatypes/identifier.ts';
import { identifierToken, syntheticIdentifier } from '../mapping/keys.ts';
import type { MessagePlan, ResourcePlan } from '../mapping/plan.ts';
import { asFill, assertFindableIdentities, localRef, MappingError } from '../mapping/plan.ts';
import type { PatientLink } from '../mapping/segments/pid.ts';
import { administrativeGender, patientLink, US_SSN } from '../mapping/segments/pid.ts';
import { organizationRef } from '../mapping/segments/practitioner.ts';
import type { CsvProblem, CsvRow } from './csv.ts';
import { parseCsv } from './csv.ts';

/**
 * CSV patient rosters (docs/file-formats.md, "CSV patient roster") → one MessagePlan per row, for
 * the same writer as HL7 (`commitPlan`). Identifier systems, the Patient's identity and the
 * Coverage and payer keys follow the HL7 maps (PID, IN1) and use the same NamingSystem
 * configuration, so a patient sent in a roster and in an ADT message is one Patient. Pure: no
 * I/O, no clock. Messages name lines and columns, never values (rosters are PHI).
 */

/** The columns a roster may have, in the documented order. */
export const ROSTER_COLUMNS = [
  'mrn',
  'mrn_authority',
  'family',
  'given',
  'birth_date',
  'sex',
  'address_line1',
  'address_line2',
  'city',
  'state',
  'postal_code',
  'country',
  'phone',
  'email',
  'ssn',
  'payer_id',
  'payer_id_authority',
  'payer_name',
  'member_id',
  'group_number',
  'plan_id',
  'plan_name',
  'coverage_start',
  'coverage_end',
  'relationship',
] as const;

/** A roster column name (lower case). */
export type RosterColumn = (typeof ROSTER_COLUMNS)[number];

/** Columns every row must fill. */
export const REQUIRED_COLUMNS: readonly RosterColumn[] = ['mrn', 'family', 'given', 'birth_date', 'sex'];

/**
 * Coverage columns that only qualify others: filled alone they do not make a Coverage (a partner
 * that fills `relationship` with `self` for everyone must not get a coverage error on its
 * self-pay patients), they are ignored with a warning.
 */
const COVERAGE_QUALIFIERS: readonly RosterColumn[] = ['payer_id_authority', 'relationship'];

/**
 * Columns that, when any is filled on a row, make the row describe a Coverage: the coverage
 * columns (from `payer_id` on, as documented) other than the qualifiers.
 */
export const COVERAGE_COLUMNS: readonly RosterColumn[] = ROSTER_COLUMNS.slice(ROSTER_COLUMNS.indexOf('payer_id')).filter((c) => !COVERAGE_QUALIFIERS.includes(c));

const SUBSCRIBER_RELATIONSHIP = 'http://terminology.hl7.org/CodeSystem/subscriber-relationship';
const COVERAGE_CLASS = 'http://terminology.hl7.org/CodeSystem/coverage-class';

/** The subscriber-relationship codes a roster may use (FHIR R4 value set, case-insensitive). */
const RELATIONSHIPS = new Set(['self', 'spouse', 'child', 'parent', 'common', 'other', 'injured']);

/** FHIR gender codes accepted beside the HL7 table 0001 codes `administrativeGender` reads. */
const GENDER_WORDS = new Set(['male', 'female', 'other', 'unknown']);

/** What a roster row is mapped with: the HL7 mapping configuration and who sent the file. */
export interface RosterContext {
  /**
   * The HL7 mapping configuration (NamingSystems turn assigning authorities into identifier
   * systems): `loadMappingConfig` on a server, `readMappingConfigFiles('seed')` in tests.
   */
  readonly config: MappingConfig;
  /**
   * The partner that sent the file (its SFTP account or partner code). Scopes identifiers that
   * come without an assigning authority: a bare MRN from one partner never matches another's.
   */
  readonly sender: string;
  /** Assigning authority of MRNs whose `mrn_authority` is empty (or absent from the file). */
  readonly mrnAuthority?: string;
  /** Assigning authority of payer ids whose `payer_id_authority` is empty (or absent). */
  readonly payerIdAuthority?: string;
  /**
   * How the Patient is merged with the stored one: `overlay` (default; the roster is
   * authoritative for its patients' demographics, its values replace stored ones) or `fill` (it
   * only adds what is missing, for partners whose demographics a hospital feed knows better).
   */
  readonly patientMerge?: 'overlay' | 'fill';
}

/** One row mapped, or why it cannot be. */
export type RosterRowResult = { plan: MessagePlan; warnings: string[] } | { errors: string[] };

/** One row of {@link readRoster}: its plan when it could be mapped. */
export interface RosterRowOutcome {
  readonly line: number;
  readonly plan?: MessagePlan;
  readonly errors: string[];
  readonly warnings: string[];
}

/** A read roster. Rows are independent: a row with errors has no plan, the others are unaffected. */
export interface Roster {
  readonly rows: RosterRowOutcome[];
  /** File-level problems: unreadable records (skipped), a missing header or required column. */
  readonly problems: CsvProblem[];
  /** File-level warnings: unknown columns, once each. */
  readonly warnings: CsvProblem[];
}

/**
 * Reads a roster file: parses the CSV, checks the header once (unknown columns are warnings,
 * missing required and repeated columns problems) and maps every row. Rows whose cells are all
 * empty (spreadsheet exports leave them) are skipped.
 * @param text - The file's text (UTF-8, decoded; a BOM is allowed).
 * @param context - Mapping configuration and sender.
 * @returns The rows with their plans, errors and warnings, and the file's problems and warnings.
 */
export function readRoster(text: string, context: RosterContext): Roster {
  const table = parseCsv(text);
  const problems: CsvProblem[] = [...table.problems];
  const warnings: CsvProblem[] = [];
  const headerLine = table.headerLine;
  if (table.header.length === 0) {
    if (problems.length === 0) {
      problems.push({ line: 1, message: 'the file has no header row' });
    }
    return { rows: [], problems, warnings };
  }
  const columns = columnIndex(table.header);
  if (![...columns.keys()].some((name) => (ROSTER_COLUMNS as readonly string[]).includes(name))) {
    // Probably a file without a header: its first patient would be read as column names, so
    // nothing of it is echoed and no row is mapped.
    problems.push({ line: headerLine, message: `the header row names no roster column; the first line must be the header (${REQUIRED_COLUMNS.join(', ')}, ...)` });
    return { rows: [], problems: sortByLine(problems), warnings };
  }
  for (const column of REQUIRED_COLUMNS) {
    if (!columns.has(column)) {
      problems.push({ line: headerLine, message: `required column ${column} is missing` });
    }
  }
  const unnamed = table.header.flatMap((name, position) => (name.trim() ? [] : [position + 1]));
  if (unnamed.length) {
    warnings.push({ line: headerLine, message: `column ${unnamed.join(', ')} has no name; ignored` });
  }
  for (const [name, positions] of columns) {
    if (!(ROSTER_COLUMNS as readonly string[]).includes(name)) {
      warnings.push({ line: headerLine, message: `column ${positions.map((p) => p + 1).join(', ')} (${name}) is not a roster column; ignored` });
    } else if (positions.length > 1) {
      problems.push({ line: headerLine, message: `column ${name} appears ${positions.length} times (columns ${positions.map((p) => p + 1).join(', ')})` });
    }
  }
  const rows: RosterRowOutcome[] = [];
  for (const row of table.rows) {
    if (row.cells.every((c) => !c.trim())) {
      continue;
    }
    const result = mapRosterRow(row, table.header, context);
    rows.push('errors' in result ? { line: row.line, errors: result.errors, warnings: [] } : { line: row.line, plan: result.plan, errors: [], warnings: result.warnings });
  }
  return { rows, problems: sortByLine(problems), warnings };
}

/**
 * Maps one roster row to a MessagePlan: the Patient (matched by its MRN, with the system the
 * MRN's assigning authority gives, as PID-3), and when coverage columns are filled the payer
 * Organization and a Coverage keyed as IN1 keys them. Columns not in {@link ROSTER_COLUMNS} are
 * ignored here ({@link readRoster} warns about them once).
 * @param row - The row (from `parseCsv`).
 * @param header - The file's header (names as sent; matched case-insensitively).
 * @param context - Mapping configuration and sender.
 * @returns The plan and warnings, or every error of the row (`line N: <column> ...`, no values).
 */
export function mapRosterRow(row: CsvRow, header: readonly string[], context: RosterContext): RosterRowResult {
  const columns = columnIndex(header);
  const errors: string[] = [];
  const warnings: string[] = [];
  const at = `line ${row.line}: `;
  const cell = (column: RosterColumn): string => {
    const positions = columns.get(column);
    if (positions && positions.length > 1) {
      errors.push(`${at}column ${column} appears more than once in the header`);
      return '';
    }
    return positions ? (row.cells[positions[0]] ?? '').trim() : '';
  };
  const values = Object.fromEntries(ROSTER_COLUMNS.map((c) => [c, cell(c)])) as Record<RosterColumn, string>;
  if (errors.length) {
    return { errors: [...new Set(errors)] };
  }

  for (const column of REQUIRED_COLUMNS) {
    if (!values[column]) {
      errors.push(`${at}${column} is required`);
    }
  }
  const birthDate = values.birth_date ? rosterDate(values.birth_date) : undefined;
  if (values.birth_date && !birthDate) {
    errors.push(`${at}birth_date is not a date (YYYY-MM-DD or YYYYMMDD)`);
  }
  const gender = values.sex ? rosterGender(values.sex) : undefined;
  if (values.sex && !gender) {
    errors.push(`${at}sex is not M, F, O or U`);
  }
  for (const column of ['mrn', 'payer_id'] as const) {
    if (values[column].includes('|')) {
      errors.push(`${at}${column} contains '|', which identifier searches cannot match`);
    }
  }
  if (values.ssn && !/^\d{3}-?\d{2}-?\d{4}$/.test(values.ssn)) {
    errors.push(`${at}ssn is not 9 digits (NNN-NN-NNNN or NNNNNNNNN)`);
  }
  if (values.phone && !/\d/.test(values.phone)) {
    errors.push(`${at}phone has no digits`);
  }
  if (values.email && !/^[^\s@]+@[^\s@]+$/.test(values.email)) {
    errors.push(`${at}email is not an email address`);
  }

  const hasCoverage = COVERAGE_COLUMNS.some((c) => values[c]);
  const start = values.coverage_start ? rosterDate(values.coverage_start) : undefined;
  const end = values.coverage_end ? rosterDate(values.coverage_end) : undefined;
  const relationship = (values.relationship || 'self').toLowerCase();
  if (hasCoverage) {
    if (!values.payer_id && !values.payer_name) {
      errors.push(`${at}payer_id or payer_name is required when coverage columns are filled`);
    } else if (!values.payer_id && !values.plan_id) {
      // As IN1: a coverage is keyed by its payer's id, or without one by the plan.
      errors.push(`${at}payer_id or plan_id is required to identify the coverage`);
    }
    if (values.coverage_start && !start) {
      errors.push(`${at}coverage_start is not a date (YYYY-MM-DD or YYYYMMDD)`);
    }
    if (values.coverage_end && !end) {
      errors.push(`${at}coverage_end is not a date (YYYY-MM-DD or YYYYMMDD)`);
    }
    if (start && end && end < start) {
      errors.push(`${at}coverage_end is before coverage_start`);
    }
    if (!RELATIONSHIPS.has(relationship)) {
      errors.push(`${at}relationship is not one of ${[...RELATIONSHIPS].join(', ')}`);
    }
  } else {
    for (const column of COVERAGE_QUALIFIERS) {
      if (values[column]) {
        warnings.push(`${at}${column} is ignored: the row has no coverage`);
      }
    }
  }
  if (errors.length) {
    return { errors };
  }

  const ctx = rosterMappingContext(context);
  const system = (column: RosterColumn, authority: string, typeCode: string, scope: string): string => {
    if (!authority) {
      return `${HUB_SID}/roster/${slug(context.sender || 'unknown-sender')}/${scope}`;
    }
    const before = ctx.warnings.length;
    const result = ctx.identifierSystem(authorityParts(authority), typeCode);
    warnings.push(...ctx.warnings.slice(before).map((w) => `${at}${column}: ${w.text}`));
    return result;
  };

  const mrn: Identifier = {
    system: system('mrn_authority', values.mrn_authority || context.mrnAuthority?.trim() || '', 'MR', 'mrn'),
    value: values.mrn,
    type: identifierType('MR'),
  };
  const patient: Patient = {
    resourceType: 'Patient',
    identifier: [mrn],
    active: true,
    name: [rosterName(values.family, values.given)],
    gender,
    birthDate,
  };
  if (values.ssn) {
    // Recorded, never matched on (as PID-19): SSNs are mistyped and shared, and a wrong match
    // would merge two people's records.
    patient.identifier?.push({ type: identifierType('SS'), system: US_SSN, value: values.ssn });
  }
  const address = rosterAddress(values);
  if (address) {
    patient.address = [address];
  }
  const telecom: ContactPoint[] = [];
  if (values.phone) {
    telecom.push({ system: 'phone', value: values.phone });
  }
  if (values.email) {
    telecom.push({ system: 'email', value: values.email });
  }
  if (telecom.length) {
    patient.telecom = telecom;
  }
  const patientPlan: ResourcePlan<Patient> = { key: 'Patient', resource: patient, identifiers: [mrn], merge: 'overlay' };
  const plans: ResourcePlan[] = [context.patientMerge === 'fill' ? asFill(patientPlan) : patientPlan];

  if (hasCoverage) {
    const payerId = values.payer_id
      ? { system: system('payer_id_authority', values.payer_id_authority || context.payerIdAuthority?.trim() || '', '', 'payer'), value: values.payer_id }
      : undefined;
    plans.push(rosterCoverage(values, ctx, patientLink(patientPlan), payerId, { start, end, relationship }, plans));
  }

  const plan: MessagePlan = { resources: plans, warnings: ctx.warnings };
  try {
    assertFindableIdentities(plan);
  } catch (err) {
    if (err instanceof MappingError) {
      return { errors: [`${at}${err.message}`] };
    }
    throw err;
  }
  return { plan, warnings };
}

/**
 * The Coverage of a row, keyed as IN1 keys it: patient + payer id + member id (IN1-36), else
 * patient + payer id + plan id (IN1-2), with the payer Organization planned (merge `fill`) when
 * it has an id and only named on the reference otherwise.
 */
function rosterCoverage(
  values: Record<RosterColumn, string>,
  ctx: MappingContext,
  patient: PatientLink,
  payerId: Identifier | undefined,
  details: { start?: string; end?: string; relationship: string },
  plans: ResourcePlan[]
): ResourcePlan<Coverage> {
  const payor = organizationRef(payerId, { name: values.payer_name || undefined }, plans);
  const identifier =
    payerId && values.member_id
      ? syntheticIdentifier('coverage', ctx, [patient.token, identifierToken(payerId), values.member_id])
      : syntheticIdentifier('coverage-plan', ctx, [patient.token, identifierToken(payerId), values.plan_id]);
  const relationship: CodeableConcept = { coding: [{ system: SUBSCRIBER_RELATIONSHIP, code: details.relationship }] };
  const coverage: Coverage = {
    resourceType: 'Coverage',
    identifier: [identifier],
    // As IN1: the roster lists coverage in force; FHIR requires a status.
    status: 'active',
    beneficiary: localRef<Patient>(patient.key),
    // The payer reference always exists here: the row has a payer id or a payer name.
    payor: payor ? [payor] : [],
    relationship,
  };
  if (details.relationship === 'self') {
    coverage.subscriber = localRef<Patient>(patient.key);
  }
  if (values.member_id) {
    coverage.subscriberId = values.member_id;
  }
  if (details.start || details.end) {
    coverage.period = { ...(details.start ? { start: details.start } : {}), ...(details.end ? { end: details.end } : {}) };
  }
  const classes: CoverageClass[] = [];
  const planValue = values.plan_id || values.plan_name;
  if (planValue) {
    // CoverageClass.value is required: a plan known only by name uses the name as its value.
    classes.push(coverageClass('plan', planValue, values.plan_id ? values.plan_name : ''));
  }
  if (values.group_number) {
    classes.push(coverageClass('group', values.group_number, ''));
  }
  if (classes.length) {
    coverage.class = classes;
  }
  return { key: `Coverage/${identifier.value}`, resource: coverage, identifiers: [identifier], merge: 'overlay' };
}

function coverageClass(code: 'plan' | 'group', value: string, name: string): CoverageClass {
  return { type: { coding: [{ system: COVERAGE_CLASS, code }] }, value, ...(name ? { name } : {}) };
}

/**
 * A MappingContext for roster rows: the sender stands in the place of MSH-4 (its configured time
 * zone is irrelevant, rosters carry dates only). Only `identifierSystem` and synthetic keys use it.
 */
function rosterMappingContext(context: RosterContext): MappingContext {
  const header: MessageHeaderInfo = { ...EMPTY_MESSAGE_HEADER, sendingApplication: 'roster', sendingFacility: context.sender };
  return new MappingContext(header, context.config);
}

const OID = /^[0-2](\.(0|[1-9]\d*))+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/;

/**
 * An authority cell as the HD of a CX-4: an OID, UUID or URI is the universal id (HD-2/HD-3),
 * anything else the namespace id (HD-1). Either finds a NamingSystem that lists it.
 * @param authority - The cell (trimmed, not empty).
 * @returns HD parts for `MappingContext.identifierSystem`.
 */
export function authorityParts(authority: string): { namespace: string; universalId: string; universalIdType: string } {
  if (OID.test(authority)) {
    return { namespace: '', universalId: authority, universalIdType: 'ISO' };
  }
  if (UUID.test(authority)) {
    return { namespace: '', universalId: authority, universalIdType: 'UUID' };
  }
  if (ABSOLUTE_URI.test(authority)) {
    return { namespace: '', universalId: authority, universalIdType: 'URI' };
  }
  return { namespace: authority, universalId: '', universalIdType: '' };
}

/**
 * @param value - A date cell: `YYYY-MM-DD` or `YYYYMMDD`.
 * @returns The FHIR date, or undefined when it is not a calendar date.
 */
export function rosterDate(value: string): string | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value) ?? /^(\d{4})(\d{2})(\d{2})$/.exec(value);
  if (!match) {
    return undefined;
  }
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  // Date.UTC rolls 2023-02-30 over to March: a date that does not round-trip does not exist.
  if (year < 1 || date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) {
    return undefined;
  }
  return `${match[1]}-${match[2]}-${match[3]}`;
}

/**
 * @param value - A sex cell: an HL7 table 0001 code (as PID-8) or a FHIR gender code.
 * @returns The FHIR gender, or undefined when it is neither.
 */
export function rosterGender(value: string): Patient['gender'] | undefined {
  const lower = value.trim().toLowerCase();
  if (GENDER_WORDS.has(lower)) {
    return lower as Patient['gender'];
  }
  return administrativeGender(value);
}

/** The name as XPN.1-XPN.3 give it: family, and each space-separated given name. */
function rosterName(family: string, given: string): HumanName {
  return { family, given: given.split(/\s+/).filter(Boolean) };
}

/** The address columns as XAD gives them (line 1 and 2, city, state, postal code, country). */
function rosterAddress(values: Record<RosterColumn, string>): Address | undefined {
  const address: Address = {};
  const line = [values.address_line1, values.address_line2].filter(Boolean);
  if (line.length) {
    address.line = line;
  }
  const parts: [keyof Address, string][] = [
    ['city', values.city],
    ['state', values.state],
    ['postalCode', values.postal_code],
    ['country', values.country],
  ];
  for (const [key, value] of parts) {
    if (value) {
      (address as Record<string, string>)[key] = value;
    }
  }
  return Object.keys(address).length ? address : undefined;
}

/** Header names (trimmed, lower case) to their 0-based positions. */
function columnIndex(header: readonly string[]): Map<string, number[]> {
  const index = new Map<string, number[]>();
  header.forEach((name, position) => {
    const key = name.trim().toLowerCase();
    if (key) {
      index.set(key, [...(index.get(key) ?? []), position]);
    }
  });
  return index;
}

function sortByLine(issues: CsvProblem[]): CsvProblem[] {
  return [...issues].sort((a, b) => a.line - b.line);
}
