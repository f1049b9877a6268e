import type { Hl7Segment } from '@medplum/core';
import type { CodeableConcept, Coding, Coverage, CoverageClass, HumanName, Patient, Reference, RelatedPerson } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import type { FieldRep } from '../../hl7/fields.ts';
import { rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { xadToAddress } from '../datatypes/address.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { cxToIdentifier } from '../datatypes/identifier.ts';
import { xpnToHumanName } from '../datatypes/name.ts';
import { xtnToContactPoint } from '../datatypes/telecom.ts';
import { identifierToken, syntheticIdentifier } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef } from '../plan.ts';
import { relatedPersonIdentity, relationshipConcept } from './nk1.ts';
import type { PatientLink } from './pid.ts';
import { administrativeGender } from './pid.ts';
import { organizationRef } from './practitioner.ts';

const SUBSCRIBER_RELATIONSHIP = 'http://terminology.hl7.org/CodeSystem/subscriber-relationship';
const COVERAGE_CLASS = 'http://terminology.hl7.org/CodeSystem/coverage-class';

/**
 * IN1-17 → subscriber-relationship: HL7 table 0063 codes, and the X12 individual relationship
 * codes (18 self, 01 spouse, 19 child) that US registration systems often send in this field.
 */
const RELATIONSHIP: Record<string, string> = {
  SEL: 'self',
  '18': 'self',
  SPO: 'spouse',
  '01': 'spouse',
  DOM: 'common',
  CHD: 'child',
  NCH: 'child',
  SCH: 'child',
  FCH: 'child',
  '19': 'child',
  PAR: 'parent',
  MTH: 'parent',
  FTH: 'parent',
};

/**
 * IN1 → Coverage (IG IN1[Coverage]) with its payor Organization and, when the insured is not
 * the patient, a RelatedPerson subscriber. IN1-3 (company id) + IN1-4 name, IN1-5 address, IN1-7
 * phone → payor; IN1-2 plan and IN1-8/9 group → class; IN1-12/13 → period; IN1-15 → type; IN1-16
 * and IN1-17 → subscriber (the patient when the relationship is self) and relationship; IN1-18,
 * IN1-19, IN1-43 → the subscriber's birth date, address, gender; IN1-22 → order; IN1-36 policy
 * number → subscriberId. Keyed by patient + company id + policy number; without both, by
 * patient + company + plan. The status is `active` (FHIR requires one; IN1 lists coverage in force).
 * @param in1 - The IN1 segment.
 * @param ctx - The mapping context.
 * @param patient - The patient (the beneficiary).
 * @param sequence - Which IN1 of the message (1-based), for warnings.
 * @param plans - Plans collected so far (payor Organization and subscriber RelatedPerson are added).
 * @returns The plan, or undefined (with a warning) when the coverage names no insurer or plan.
 */
export function mapCoverage(in1: Hl7Segment, ctx: MappingContext, patient: PatientLink, sequence: number, plans: ResourcePlan[]): ResourcePlan<Coverage> | undefined {
  const company = reps(in1, 3)
    .map((cx) => cxToIdentifier(cx, ctx, { segment: 'IN1', sequence, field: 3 }))
    .find((i) => i !== undefined);
  const companyName = rep(in1, 4)?.get(1).trim();
  const payor = organizationRef(
    company,
    {
      name: companyName || undefined,
      address: reps(in1, 5).map(xadToAddress).filter((a) => a !== undefined),
      telecom: reps(in1, 7).map(xtnToContactPoint).filter((c) => c !== undefined),
    },
    plans
  );
  const planCode = rep(in1, 2)?.get(1).trim() ?? '';
  const policy = val(in1, 36).trim();
  if (!payor || (!company && !planCode)) {
    ctx.warn({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'IN1 has no insurance company id (IN1-3) or name (IN1-4) and plan (IN1-2); the coverage is not recorded',
      location: { segment: 'IN1', sequence, field: 3 },
    });
    return undefined;
  }
  // A Coverage is one beneficiary's: family members insured under one policy number each have
  // their own, so the patient is part of the key.
  const identifier =
    company && policy
      ? syntheticIdentifier('coverage', ctx, [patient.token, identifierToken(company), policy])
      : syntheticIdentifier('coverage-plan', ctx, [patient.token, identifierToken(company), planCode]);

  const coverage: Coverage = {
    resourceType: 'Coverage',
    identifier: [identifier],
    status: 'active',
    beneficiary: localRef<Patient>(patient.key),
    payor: [payor],
  };
  const type = rep(in1, 15);
  const typeConcept = type ? cweToCodeableConcept(type, ctx) : undefined;
  if (typeConcept) {
    coverage.type = typeConcept;
  }
  const subscriber = mapSubscriber(in1, ctx, patient, sequence, plans);
  if (subscriber.relationship) {
    coverage.relationship = subscriber.relationship;
  }
  if (subscriber.reference) {
    coverage.subscriber = subscriber.reference;
  }
  const subscriberId = policy || rep(in1, 49)?.get(1).trim();
  if (subscriberId) {
    coverage.subscriberId = subscriberId;
  }
  const start = ctx.date(val(in1, 12), { segment: 'IN1', sequence, field: 12 });
  const end = ctx.date(val(in1, 13), { segment: 'IN1', sequence, field: 13 });
  if (start || end) {
    coverage.period = { ...(start ? { start } : {}), ...(end ? { end } : {}) };
  }
  const classes = coverageClasses(in1);
  if (classes.length) {
    coverage.class = classes;
  }
  const order = Number(val(in1, 22).trim());
  if (val(in1, 22).trim() && Number.isInteger(order) && order >= 1) {
    coverage.order = order;
  }
  return { key: `Coverage/${identifier.value}`, resource: coverage, identifiers: [identifier], merge: 'overlay' };
}

/** IN1-2 health plan → class `plan`, IN1-8/IN1-9 group number and name → class `group`. */
function coverageClasses(in1: Hl7Segment): CoverageClass[] {
  const classes: CoverageClass[] = [];
  const plan = rep(in1, 2);
  if (plan?.get(1).trim()) {
    classes.push(coverageClass('plan', plan.get(1).trim(), plan.get(2).trim()));
  }
  const group = val(in1, 8).trim();
  if (group) {
    classes.push(coverageClass('group', group, rep(in1, 9)?.get(1).trim() ?? ''));
  }
  return classes;
}

function coverageClass(code: 'plan' | 'group', value: string, name: string): CoverageClass {
  return { type: { coding: [{ system: COVERAGE_CLASS, code }] }, value, ...(name ? { name } : {}) };
}

/**
 * IN1-16/IN1-17: the subscriber is the Patient when the relationship is self; otherwise, when
 * the insured is named, a RelatedPerson keyed like an NK1 with the same relationship and name
 * (so a spouse sent in NK1 and as a subscriber is one RelatedPerson). It is planned with merge
 * `fill`: NK1 is the better source for the person, IN1 only adds what is missing.
 */
function mapSubscriber(
  in1: Hl7Segment,
  ctx: MappingContext,
  patient: PatientLink,
  sequence: number,
  plans: ResourcePlan[]
): { reference?: Reference<Patient | RelatedPerson>; relationship?: CodeableConcept } {
  const relationshipRep = rep(in1, 17);
  const code = relationshipRep?.get(1).trim().toUpperCase() ?? '';
  const relationship = subscriberRelationship(relationshipRep, ctx);
  if (RELATIONSHIP[code] === 'self') {
    return { reference: localRef<Patient>(patient.key), relationship };
  }
  const name = reps(in1, 16)
    .map(xpnToHumanName)
    .find((n): n is HumanName => n !== undefined);
  if (!name || !code) {
    return { relationship };
  }
  const identity = relatedPersonIdentity(ctx, patient, code, name);
  if (!plans.some((p) => p.key === identity.key)) {
    const person: RelatedPerson = {
      resourceType: 'RelatedPerson',
      identifier: [identity.identifier],
      patient: localRef<Patient>(patient.key),
      name: [name],
    };
    const concept = relationshipConcept(relationshipRep, ctx);
    if (concept) {
      person.relationship = [concept];
    }
    const gender = administrativeGender(val(in1, 43));
    if (gender) {
      person.gender = gender;
    }
    const birthDate = ctx.date(val(in1, 18), { segment: 'IN1', sequence, field: 18 });
    if (birthDate) {
      person.birthDate = birthDate;
    }
    const address = reps(in1, 19).map(xadToAddress).filter((a) => a !== undefined);
    if (address.length) {
      person.address = address;
    }
    plans.push({ key: identity.key, resource: person, identifiers: [identity.identifier], merge: 'fill' });
  }
  return { reference: localRef<RelatedPerson>(identity.key), relationship };
}

/** IN1-17 as a Coverage.relationship: the subscriber-relationship code first, then the sender's. */
function subscriberRelationship(cwe: FieldRep | undefined, ctx: MappingContext): CodeableConcept | undefined {
  if (!cwe) {
    return undefined;
  }
  const code = cwe.get(1).trim().toUpperCase();
  const sent = relationshipConcept(cwe, ctx, false);
  const standard: Coding | undefined = code ? { system: SUBSCRIBER_RELATIONSHIP, code: RELATIONSHIP[code] ?? 'other' } : undefined;
  if (!standard) {
    return sent;
  }
  return { ...sent, coding: [standard, ...(sent?.coding ?? [])] };
}

