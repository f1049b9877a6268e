import type { Address, HumanName, Patient } from '@medplum/fhirtypes';

/** Metriport's address (facts §1.2): a US address with a 2-letter state and a 5-digit zip. */
export interface MetriportAddress {
  addressLine1: string;
  addressLine2?: string;
  city: string;
  state: string;
  zip: string;
  country: 'USA';
}

/** A Metriport contact: each must hold a phone or an email. */
export interface MetriportContact {
  phone?: string;
  email?: string;
}

/** Metriport's patient demographics, as `POST /medical/v1/patient` and `/patient/match` take them. */
export interface Demographics {
  firstName: string;
  lastName: string;
  /** YYYY-MM-DD. */
  dob: string;
  genderAtBirth: 'M' | 'F' | 'O' | 'U';
  address: MetriportAddress[];
  contact?: MetriportContact[];
  personalIdentifiers?: { type: 'ssn'; value: string }[];
}

/** The outcome of {@link toDemographics}: the demographics, or every reason Metriport would refuse them. */
export type DemographicsResult = { ok: true; demographics: Demographics } | { ok: false; problems: string[] };

/** US states, DC and territories: Metriport's `USState` codes. */
const US_STATES = new Set(
  (
    'AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND ' +
    'OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI'
  ).split(' ')
);

/** Zips Metriport refuses although they have five digits (its deny-list starts with these). */
const INVALID_ZIPS = new Set(['00000', '11111', '99999', '12345']);

const GENDERS: Record<string, Demographics['genderAtBirth']> = { male: 'M', female: 'F', other: 'O', unknown: 'U' };

const SSN_SYSTEM = 'http://hl7.org/fhir/sid/us-ssn';
const EMAIL = /^[^\s@:]+@[^\s@]+\.[^\s@]+$/;

/**
 * Maps a Medplum Patient to Metriport demographics, applying Metriport's own rules so that a
 * request that would fail is never sent: a name with given and family parts, a complete birth
 * date on or after 1900 and not in the future, a gender, at least one current US address with
 * street, city, state code and a 5-digit zip (ZIP+4 is cut to 5), and contacts only with a
 * valid phone (10 digits) or email. Problems name the FHIR element, never its value (they are
 * logged, and values are PHI).
 * @param patient - The Medplum Patient.
 * @param today - Today's date (YYYY-MM-DD), for the birth date check.
 * @returns The demographics, or the list of problems.
 */
export function toDemographics(patient: Patient, today: string = new Date().toISOString().slice(0, 10)): DemographicsResult {
  const problems: string[] = [];
  const name = chooseName(patient.name);
  const firstName = name?.given?.map((g) => g.trim()).filter(Boolean).join(' ') ?? '';
  const lastName = name?.family?.trim() ?? '';
  if (!firstName) {
    problems.push('Patient.name has no given name');
  }
  if (!lastName) {
    problems.push('Patient.name has no family name');
  }

  const dob = patient.birthDate ?? '';
  if (!dob) {
    problems.push('Patient.birthDate is missing');
  } else if (!/^\d{4}-\d{2}-\d{2}$/.test(dob)) {
    problems.push('Patient.birthDate is partial: Metriport needs year, month and day');
  } else if (dob < '1900-01-01' || dob > today) {
    problems.push('Patient.birthDate must be on or after 1900-01-01 and not in the future');
  }

  const genderAtBirth = patient.gender ? GENDERS[patient.gender] : undefined;
  if (!genderAtBirth) {
    problems.push('Patient.gender is missing');
  }

  const addresses: MetriportAddress[] = [];
  const addressProblems: string[] = [];
  for (const [index, address] of (patient.address ?? []).entries()) {
    if (address.period?.end || address.use === 'old') {
      continue;
    }
    const mapped = toMetriportAddress(address, `Patient.address[${index}]`);
    if ('problems' in mapped) {
      addressProblems.push(...mapped.problems);
    } else {
      addresses.push(mapped.address);
    }
  }
  if (addresses.length === 0) {
    problems.push(...(addressProblems.length ? addressProblems : ['Patient.address: no current address']));
  }

  if (problems.length) {
    return { ok: false, problems };
  }
  const demographics: Demographics = {
    firstName,
    lastName,
    dob,
    genderAtBirth: genderAtBirth as Demographics['genderAtBirth'],
    address: addresses,
  };
  const contact = toContacts(patient);
  if (contact.length) {
    demographics.contact = contact;
  }
  const ssn = patient.identifier?.find((i) => i.system === SSN_SYSTEM)?.value?.replace(/\D/g, '');
  if (ssn?.length === 9) {
    demographics.personalIdentifiers = [{ type: 'ssn', value: ssn }];
  }
  return { ok: true, demographics };
}

/**
 * Prefers the official name, then the usual one, then the first name that is not old.
 * @param names - Patient.name.
 * @returns The chosen name.
 */
function chooseName(names: HumanName[] | undefined): HumanName | undefined {
  const current = (names ?? []).filter((n) => n.use !== 'old' && !n.period?.end);
  return current.find((n) => n.use === 'official') ?? current.find((n) => n.use === 'usual') ?? current[0];
}

function toMetriportAddress(address: Address, path: string): { address: MetriportAddress } | { problems: string[] } {
  const problems: string[] = [];
  const country = address.country?.trim().toUpperCase();
  if (country && !['US', 'USA', 'UNITED STATES', 'UNITED STATES OF AMERICA'].includes(country)) {
    return { problems: [`${path}.country is not the United States`] };
  }
  const [line1, ...rest] = (address.line ?? []).map((l) => l.trim()).filter(Boolean);
  if (!line1) {
    problems.push(`${path}.line is missing`);
  }
  const city = address.city?.trim();
  if (!city) {
    problems.push(`${path}.city is missing`);
  }
  const state = address.state?.trim().toUpperCase() ?? '';
  if (!US_STATES.has(state)) {
    problems.push(`${path}.state is ${state ? 'not a US state or territory code' : 'missing'}`);
  }
  const digits = address.postalCode?.replace(/\D/g, '') ?? '';
  // ZIP+4 is valid in the US but Metriport takes exactly five digits: the first five are the zip.
  const zip = digits.length === 9 ? digits.slice(0, 5) : digits;
  if (!zip) {
    problems.push(`${path}.postalCode is missing`);
  } else if (zip.length !== 5 || INVALID_ZIPS.has(zip)) {
    problems.push(`${path}.postalCode is not a valid 5-digit US zip`);
  }
  if (problems.length) {
    return { problems };
  }
  const result: MetriportAddress = { addressLine1: line1, city: city as string, state, zip, country: 'USA' };
  if (rest.length) {
    result.addressLine2 = rest.join(', ');
  }
  return { address: result };
}

function toContacts(patient: Patient): MetriportContact[] {
  const current = (patient.telecom ?? []).filter((t) => t.value && !t.period?.end && t.use !== 'old');
  const phones = current
    .filter((t) => t.system === 'phone' || t.system === 'sms')
    .map((t) => normalizePhone(t.value as string))
    .filter((p): p is string => Boolean(p));
  const emails = current
    .filter((t) => t.system === 'email')
    .map((t) => (t.value as string).trim())
    .filter((e) => EMAIL.test(e));
  const contacts: MetriportContact[] = [];
  for (let i = 0; i < Math.max(phones.length, emails.length); i++) {
    const contact: MetriportContact = {};
    if (phones[i]) {
      contact.phone = phones[i];
    }
    if (emails[i]) {
      contact.email = emails[i];
    }
    contacts.push(contact);
  }
  return contacts;
}

/**
 * @param value - A phone number as written.
 * @returns The 10-digit US number Metriport stores (a leading country code 1 dropped), or undefined.
 */
function normalizePhone(value: string): string | undefined {
  const digits = value.replace(/\D/g, '');
  const national = digits.length === 11 && digits.startsWith('1') ? digits.slice(1) : digits;
  return national.length === 10 ? national : undefined;
}
