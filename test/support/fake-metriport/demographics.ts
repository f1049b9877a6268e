import type { Issue } from './http.ts';
import type { FakeAddress, FakeContact, FakeDemographics, FakePersonalIdentifier, GenderAtBirth } from './types.ts';

/**
 * Metriport's demographics validation (facts §1.2), reproducing what its zod schemas answer:
 * the same messages, and the same way a union (`address`, `contact`: one object or an array)
 * collapses to `Invalid input` when a member fails on a missing or mistyped field, while
 * refinements (zip, phone, email, "phone or email") are reported with their full path.
 */

/** US states and territories accepted in `state` (case-insensitive: the schema upper-cases first). */
const US_STATES: ReadonlySet<string> = new Set([
  'AL', 'AK', 'AZ', 'AR', 'CA', 'CO', 'CT', 'DE', 'DC', 'FL', 'GA', 'HI', 'ID', 'IL', 'IN', 'IA', 'KS', 'KY', 'LA', 'ME',
  'MD', 'MA', 'MI', 'MN', 'MS', 'MO', 'MT', 'NE', 'NV', 'NH', 'NJ', 'NM', 'NY', 'NC', 'ND', 'OH', 'OK', 'OR', 'PA', 'RI',
  'SC', 'SD', 'TN', 'TX', 'UT', 'VT', 'VA', 'WA', 'WV', 'WI', 'WY', 'AS', 'GU', 'MP', 'PR', 'VI',
]);

/** Zips Metriport rejects outright (MP `packages/shared/src/domain/address/zip.ts`). */
const KNOWN_INVALID_ZIPS: ReadonlySet<string> = new Set([
  '00000', '99999', '10000', '20000', '30000', '40000', '50000', '60000', '70000', '80000', '90000', '12345', '54321',
]);

const GENDERS: readonly GenderAtBirth[] = ['F', 'M', 'O', 'U'];

/** Result of validating a body. */
export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly issues: readonly Issue[] };

/** Issues of one member: `fatal` ones (type, required, enum) make a union member fail outright. */
interface Collected {
  readonly issues: Issue[];
  fatal: boolean;
}

/**
 * Validates and normalizes a Demographics / PatientCreate body.
 * @param body - The parsed JSON body.
 * @param today - Today (YYYY-MM-DD), for the "not in the future" rule.
 * @returns The normalized demographics and `externalId`, or the issues.
 */
export function parsePatientBody(body: unknown, today = new Date().toISOString().slice(0, 10)): Parsed<FakeDemographics & { externalId?: string }> {
  if (!isObject(body)) {
    return { ok: false, issues: [{ message: `Expected object, received ${typeName(body)}`, path: [] }] };
  }
  const c: Collected = { issues: [], fatal: false };
  const firstName = nameString(body.firstName, ['firstName'], c);
  const lastName = nameString(body.lastName, ['lastName'], c);
  const dob = dateOfBirth(body.dob, today, c);
  const genderAtBirth = gender(body.genderAtBirth, c);
  const personalIdentifiers = identifiers(body.personalIdentifiers, c);
  const address = oneOrMany(body.address, ['address'], parseAddress, true, c);
  const contact = oneOrMany(body.contact, ['contact'], parseContact, false, c);
  let externalId: string | undefined;
  if (body.externalId !== undefined && body.externalId !== null) {
    if (typeof body.externalId === 'string') {
      externalId = body.externalId.trim() || undefined;
    } else {
      fail(c, ['externalId'], `Expected string, received ${typeName(body.externalId)}`, true);
    }
  }
  if (c.issues.length) {
    return { ok: false, issues: c.issues };
  }
  const value: FakeDemographics & { externalId?: string } = {
    firstName: firstName as string,
    lastName: lastName as string,
    dob: dob as string,
    genderAtBirth: genderAtBirth as GenderAtBirth,
    ...(personalIdentifiers ? { personalIdentifiers } : {}),
    address: address ?? [],
    ...(contact?.length ? { contact } : {}),
    ...(externalId ? { externalId } : {}),
  };
  return { ok: true, value };
}

/**
 * Whether two patients are the same person to Metriport's "get patient by demographics": same
 * date of birth and sex, a first and a last name in common (names may be comma- or
 * space-delimited lists), and an address in common (same zip and first line).
 * @param a - Demographics.
 * @param b - Demographics.
 * @returns True when they match.
 */
export function demographicsMatch(a: FakeDemographics, b: FakeDemographics): boolean {
  if (a.dob !== b.dob || a.genderAtBirth !== b.genderAtBirth) {
    return false;
  }
  if (!namesOverlap(a.firstName, b.firstName) || !namesOverlap(a.lastName, b.lastName)) {
    return false;
  }
  return a.address.some((x) => b.address.some((y) => x.zip === y.zip && normalizeText(x.addressLine1) === normalizeText(y.addressLine1)));
}

/**
 * Normalizes demographics given directly to the fake (no validation): zip digits, state upper
 * case, country USA, phone digits.
 * @param d - Demographics.
 * @returns The stored form.
 */
export function normalizeDemographics(d: FakeDemographics): FakeDemographics {
  return {
    ...d,
    address: d.address.map((a) => ({ ...a, zip: a.zip.replace(/\D/g, ''), state: a.state.toUpperCase(), country: 'USA' as const })),
    ...(d.contact ? { contact: d.contact.map((x) => ({ ...x, ...(x.phone ? { phone: normalizePhone(x.phone) } : {}) })) } : {}),
  };
}

// ---------------------------------------------------------------------------------------------

function nameString(value: unknown, path: (string | number)[], c: Collected): string | undefined {
  const s = requiredString(value, path, c);
  if (s !== undefined && s.length < 1) {
    fail(c, path, 'String must contain at least 1 character(s)', false);
  }
  return s;
}

function dateOfBirth(value: unknown, today: string, c: Collected): string | undefined {
  const s = requiredString(value, ['dob'], c);
  if (s === undefined) {
    return undefined;
  }
  if (!isValidIsoDate(s)) {
    fail(c, ['dob'], 'Date must be a valid ISO 8601 date formatted YYYY-MM-DD. Example: 2023-03-15', false);
  } else if (s > today) {
    fail(c, ['dob'], "Date can't be in the future", false);
  } else if (s < '1900-01-01') {
    fail(c, ['dob'], "Date can't be before 1900", false);
  }
  return s;
}

function gender(value: unknown, c: Collected): GenderAtBirth | undefined {
  if (value === undefined) {
    fail(c, ['genderAtBirth'], 'Required', true);
    return undefined;
  }
  if (!GENDERS.includes(value as GenderAtBirth)) {
    const received = typeof value === 'string' ? `'${value}'` : typeName(value);
    fail(c, ['genderAtBirth'], `Invalid enum value. Expected ${GENDERS.map((g) => `'${g}'`).join(' | ')}, received ${received}`, true);
    return undefined;
  }
  return value as GenderAtBirth;
}

function identifiers(value: unknown, c: Collected): FakePersonalIdentifier[] | undefined {
  if (value === undefined || value === null) {
    return undefined;
  }
  if (!Array.isArray(value)) {
    fail(c, ['personalIdentifiers'], `Expected array, received ${typeName(value)}`, true);
    return undefined;
  }
  const out: FakePersonalIdentifier[] = [];
  value.forEach((item: unknown, index) => {
    const valid =
      isObject(item) &&
      typeof item.value === 'string' &&
      ((item.type === 'driversLicense' && typeof item.state === 'string' && US_STATES.has(item.state.toUpperCase())) || item.type === 'ssn');
    if (!valid) {
      fail(c, ['personalIdentifiers', index], 'Invalid input', true);
    } else {
      out.push({ ...(item as unknown as FakePersonalIdentifier), ...(item.type === 'driversLicense' ? { state: (item.state as string).toUpperCase() } : {}) });
    }
  });
  return out;
}

/**
 * `z.array(member)[.nonempty()].or(member)` for `address` and `contact`: validates an array or
 * a single object; a member failing on a missing or mistyped field fails the whole union with
 * zod's `Invalid input`, a failed refinement is reported at its own path.
 */
function oneOrMany<T>(
  value: unknown,
  path: (string | number)[],
  member: (item: Record<string, unknown>, path: (string | number)[], c: Collected) => T | undefined,
  required: boolean,
  c: Collected
): T[] | undefined {
  if (value === undefined || value === null) {
    if (required) {
      fail(c, path, 'Invalid input', true);
    }
    return undefined;
  }
  const local: Collected = { issues: [], fatal: false };
  const out: T[] = [];
  if (Array.isArray(value)) {
    if (required && value.length === 0) {
      fail(local, path, 'Array must contain at least 1 element(s)', false);
    }
    value.forEach((item: unknown, index) => {
      if (!isObject(item)) {
        local.fatal = true;
        return;
      }
      const parsed = member(item, [...path, index], local);
      if (parsed !== undefined) {
        out.push(parsed);
      }
    });
  } else if (isObject(value)) {
    const parsed = member(value, path, local);
    if (parsed !== undefined) {
      out.push(parsed);
    }
  } else {
    local.fatal = true;
  }
  if (local.fatal) {
    fail(c, path, 'Invalid input', true);
  } else {
    c.issues.push(...local.issues);
  }
  return out;
}

function parseAddress(item: Record<string, unknown>, path: (string | number)[], c: Collected): FakeAddress | undefined {
  const addressLine1 = requiredString(item.addressLine1, [...path, 'addressLine1'], c);
  if (addressLine1 === '') {
    fail(c, [...path, 'addressLine1'], 'Address line must be specified.', false);
  }
  const addressLine2 = optionalString(item.addressLine2, [...path, 'addressLine2'], c);
  const city = requiredString(item.city, [...path, 'city'], c);
  if (city === '') {
    fail(c, [...path, 'city'], 'City must be specified.', false);
  }
  let state: string | undefined;
  if (typeof item.state === 'string' && US_STATES.has(item.state.trim().toUpperCase())) {
    state = item.state.trim().toUpperCase();
  } else {
    fail(c, [...path, 'state'], item.state === undefined ? 'Required' : 'Invalid enum value', true);
  }
  // z.coerce.string(): a missing zip becomes "undefined", which then fails the 5-digit rule.
  const zip = String(item.zip).trim().replace(/\D/g, '');
  if (zip.length !== 5) {
    fail(c, [...path, 'zip'], 'Zip must be a string consisting of 5 numbers', false);
  } else if (KNOWN_INVALID_ZIPS.has(zip)) {
    fail(c, [...path, 'zip'], 'Invalid zip code', false);
  }
  if (item.country !== undefined && item.country !== 'USA') {
    fail(c, [...path, 'country'], 'Invalid literal value, expected "USA"', true);
  }
  if (addressLine1 === undefined || city === undefined || state === undefined) {
    return undefined;
  }
  return { addressLine1, ...(addressLine2 ? { addressLine2 } : {}), city, state, zip, country: 'USA' };
}

function parseContact(item: Record<string, unknown>, path: (string | number)[], c: Collected): FakeContact | undefined {
  let phone: string | undefined;
  if (item.phone !== undefined && item.phone !== null && item.phone !== '') {
    phone = normalizePhone(String(item.phone));
    if (phone.length !== 10) {
      fail(c, [...path, 'phone'], 'Phone must be a string consisting of 10 numbers. For example: 4153245540', false);
    }
  }
  let email: string | undefined;
  if (item.email !== undefined && item.email !== null && item.email !== '') {
    email = typeof item.email === 'string' ? item.email.trim() : undefined;
    if (!email || !isValidEmail(email)) {
      fail(c, [...path, 'email'], 'Invalid email', false);
    }
  }
  if (!phone && !email) {
    fail(c, path, 'Either email or phone must be present', false);
  }
  return { ...(phone ? { phone } : {}), ...(email ? { email } : {}) };
}

function requiredString(value: unknown, path: (string | number)[], c: Collected): string | undefined {
  if (value === undefined) {
    fail(c, path, 'Required', true);
    return undefined;
  }
  if (typeof value !== 'string') {
    fail(c, path, `Expected string, received ${typeName(value)}`, true);
    return undefined;
  }
  return value.trim();
}

function optionalString(value: unknown, path: (string | number)[], c: Collected): string | undefined {
  if (value === undefined || value === null) {
    return undefined;
  }
  if (typeof value !== 'string') {
    fail(c, path, `Expected string, received ${typeName(value)}`, true);
    return undefined;
  }
  return value.trim() || undefined;
}

function fail(c: Collected, path: (string | number)[], message: string, fatal: boolean): void {
  c.issues.push({ message, path });
  c.fatal ||= fatal;
}

/** Digits only, a leading US country code 1 dropped from 11 digits. */
function normalizePhone(phone: string): string {
  const digits = phone.replace(/\D/g, '');
  return digits.length === 11 && digits.startsWith('1') ? digits.slice(1) : digits;
}

function isValidIsoDate(s: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s)) {
    return false;
  }
  const date = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === s;
}

/** zod's email check, roughly; `mailto:` prefixes fail it. */
function isValidEmail(s: string): boolean {
  return /^(?!\.)(?!.*\.\.)[A-Za-z0-9_'+\-.]*[A-Za-z0-9_+-]@[A-Za-z0-9][A-Za-z0-9-]*(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$/.test(s);
}

function namesOverlap(a: string, b: string): boolean {
  const split = (s: string): string[] => s.toLowerCase().split(/[\s,]+/).filter(Boolean);
  const set = new Set(split(a));
  return split(b).some((n) => set.has(n));
}

function normalizeText(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim();
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function typeName(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'array';
  }
  return typeof value === 'undefined' ? 'undefined' : typeof value;
}
