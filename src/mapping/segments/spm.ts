import type { Annotation, CodeableConcept, Identifier, Patient, ServiceRequest, Specimen } from '@medplum/fhirtypes';
import { rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { cxToIdentifier, eiToIdentifier } from '../datatypes/identifier.ts';
import { parseNm } from '../datatypes/quantity.ts';
import type { SpecimenGroup } from '../groups.ts';
import { at } from '../groups.ts';
import { conceptToken, identifierToken, syntheticIdentifier } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef } from '../plan.ts';
import { ntesToAnnotations } from './nte.ts';
import { quantityUnits } from '../datatypes/units.ts';

/** What a Specimen refers to. */
export interface SpecimenRefs {
  readonly patientKey: string;
  /** The order the specimen was collected for. */
  readonly serviceRequestKey?: string;
  /** The order's match token, for a specimen the sender gives no identifier. */
  readonly orderToken: string;
}

/** A planned Specimen: its plan key and identity token (for specimen observations' identities). */
export interface SpecimenKey {
  readonly key: string;
  readonly token: string;
}

/**
 * SPM (+ NTE) → Specimen (IG SPM[Specimen] map): SPM-2 (EIP) → identifiers (placer PLAC, filler
 * FILL), SPM-30 → accessionIdentifier, SPM-4 → type, SPM-7 → collection.method, SPM-8 →
 * collection.bodySite, SPM-12 → collection.quantity, SPM-17 (DR) → collection.collected[x]
 * (period when it has an end), SPM-18 → receivedTime, SPM-20 → status, SPM-24 → condition,
 * SPM-27 → container.type, SPM-14 and following NTE → note; request → the order. The filler id
 * is the match key, else the placer id, else the accession number; an SPM without any id is
 * keyed by the order, specimen type and collection time. The same specimen in several order
 * groups (one tube, several tests) is one Specimen requested by each order.
 * @param group - The SPM group.
 * @param refs - Plan keys of what it refers to.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far; the Specimen is added (or an existing plan extended).
 * @returns The Specimen's plan key and identity token.
 */
export function mapSpecimen(group: SpecimenGroup, refs: SpecimenRefs, ctx: MappingContext, plans: ResourcePlan[]): SpecimenKey {
  const { spm } = group;
  const id = rep(spm.segment, 2);
  const placer = id && !id.isNull ? eiToIdentifier(id.nested(1), ctx, 'PLAC', at(spm, 2)) : undefined;
  const filler = id && !id.isNull ? eiToIdentifier(id.nested(2), ctx, 'FILL', at(spm, 2)) : undefined;
  const accessionField = rep(spm.segment, 30);
  const accession = accessionField ? cxToIdentifier(accessionField, ctx, at(spm, 30)) : undefined;

  const typeField = rep(spm.segment, 4);
  const type = typeField ? cweToCodeableConcept(typeField, ctx, 'HL70487') : undefined;
  const collected = rep(spm.segment, 17);
  const collectedStart = collected ? ctx.dateTime(collected.sub(1, 1), at(spm, 17)) : undefined;
  const collectedEnd = collected ? ctx.dateTime(collected.sub(2, 1), at(spm, 17)) : undefined;

  const real = [filler, placer, accession].filter((i): i is Identifier => Boolean(i));
  const identifiers = real.length ? real : [syntheticIdentifier('specimen', ctx, [refs.orderToken, conceptToken(type), collectedStart ?? ''])];
  const token = identifierToken(identifiers[0]);
  const key = 'Specimen/' + token;

  const existing = plans.find((p) => p.key === key) as ResourcePlan<Specimen> | undefined;
  if (existing) {
    if (refs.serviceRequestKey && !existing.resource.request?.some((r) => r.reference === localRef(refs.serviceRequestKey as string).reference)) {
      existing.resource.request = [...(existing.resource.request ?? []), localRef<ServiceRequest>(refs.serviceRequestKey)];
    }
    return { key, token };
  }

  const specimen: Specimen = {
    resourceType: 'Specimen',
    identifier: [placer, filler].filter((i): i is Identifier => Boolean(i)),
    subject: localRef<Patient>(refs.patientKey),
  };
  if (!real.length) {
    specimen.identifier = identifiers;
  }
  if (accession) {
    specimen.accessionIdentifier = accession;
  }
  const availability = val(spm.segment, 20).trim().toUpperCase();
  if (availability === 'Y' || availability === 'N') {
    specimen.status = availability === 'Y' ? 'available' : 'unavailable';
  }
  if (type) {
    specimen.type = type;
  }
  const received = ctx.dateTime(val(spm.segment, 18), at(spm, 18));
  if (received) {
    specimen.receivedTime = received;
  }
  if (refs.serviceRequestKey) {
    specimen.request = [localRef<ServiceRequest>(refs.serviceRequestKey)];
  }

  const collection: NonNullable<Specimen['collection']> = {};
  if (collectedEnd) {
    collection.collectedPeriod = { ...(collectedStart ? { start: collectedStart } : {}), end: collectedEnd };
  } else if (collectedStart) {
    collection.collectedDateTime = collectedStart;
  }
  const amount = rep(spm.segment, 12);
  const amountValue = amount ? parseNm(amount.get(1)) : undefined;
  if (amount && amountValue !== undefined) {
    collection.quantity = { value: amountValue, ...quantityUnits(amount.nested(2), ctx) };
  }
  const method = rep(spm.segment, 7);
  const methodConcept = method ? cweToCodeableConcept(method, ctx, 'HL70488') : undefined;
  if (methodConcept) {
    collection.method = methodConcept;
  }
  const site = rep(spm.segment, 8);
  const siteConcept = site ? cweToCodeableConcept(site, ctx) : undefined;
  if (siteConcept) {
    collection.bodySite = siteConcept;
  }
  if (Object.keys(collection).length) {
    specimen.collection = collection;
  }

  const conditions = reps(spm.segment, 24)
    .map((c) => cweToCodeableConcept(c, ctx, 'HL70493'))
    .filter((c): c is CodeableConcept => Boolean(c));
  if (conditions.length) {
    specimen.condition = conditions;
  }
  const container = rep(spm.segment, 27);
  const containerType = container ? cweToCodeableConcept(container, ctx) : undefined;
  if (containerType) {
    specimen.container = [{ type: containerType }];
  }
  const notes: Annotation[] = [
    ...reps(spm.segment, 14)
      .map((d) => d.get(1).trim())
      .filter(Boolean)
      .map((text) => ({ text })),
    ...ntesToAnnotations(group.notes, ctx, plans),
  ];
  if (notes.length) {
    specimen.note = notes;
  }

  plans.push({ key, resource: specimen, identifiers, merge: 'overlay' });
  return { key, token };
}
