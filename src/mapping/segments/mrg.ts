import type { Hl7Segment } from '@medplum/core';
import type { HumanName, Identifier, Patient } from '@medplum/fhirtypes';
import { mergeIdentifiers } from '../../fhir/identifiers.ts';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { reps } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cxToIdentifier } from '../datatypes/identifier.ts';
import { xpnToHumanName } from '../datatypes/name.ts';
import { identifierToken } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef, MappingError } from '../plan.ts';

/**
 * PID + MRG (A40 merge patient) → the surviving Patient and the merged (old) one. MRG-1 (prior
 * patient identifier list) identifies the old Patient; PID-3 the survivor. The IG has no A40 map;
 * this follows FHIR's Patient.link semantics (as LinuxForHealth does, not MS FHIR-Converter's
 * Linkage):
 * - the survivor (found by PID-3) also carries the MRG-1 identifiers, with `use: old`, so
 *   searches by a retired number still reach it, and `link: replaces` the old Patient;
 * - the old Patient (found by MRG-1) becomes `active: false` with `link: replaced-by` the
 *   survivor (merge `overlay`), and gets MRG-7 (prior patient name) when sent.
 * MRG-1 identifiers that are also in PID-3 (e.g. a shared enterprise id) are not used to find
 * the old Patient: they would find the survivor.
 * @param survivor - The Patient plan from the PID.
 * @param mrg - The MRG segment that follows the PID.
 * @param ctx - The mapping context.
 * @param sequence - Which PID/MRG pair of the message (1-based), for errors.
 * @param oldKey - Plan key for the old Patient.
 * @returns The survivor (with the old identifiers and one more link) and the old Patient's plan.
 */
export function mapMerge(
  survivor: ResourcePlan<Patient>,
  mrg: Hl7Segment | undefined,
  ctx: MappingContext,
  sequence: number,
  oldKey: string
): [ResourcePlan<Patient>, ResourcePlan<Patient>] {
  if (!mrg) {
    throw new MappingError({
      code: Hl7ErrorCode.SegmentSequence,
      text: 'MRG segment missing after PID (a merge needs the prior patient identifiers)',
      location: { segment: 'MRG', sequence },
    });
  }
  const surviving = new Set(survivor.identifiers.map(identifierToken));
  const prior = reps(mrg, 1)
    .map((cx) => cxToIdentifier(cx, ctx, { segment: 'MRG', sequence, field: 1 }))
    .filter((i): i is Identifier => i !== undefined);
  if (prior.length === 0) {
    throw new MappingError({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'MRG-1 (prior patient identifier list) has no identifier',
      location: { segment: 'MRG', sequence, field: 1 },
    });
  }
  const retired = prior.filter((i) => !surviving.has(identifierToken(i)));
  if (retired.length === 0) {
    throw new MappingError({
      code: Hl7ErrorCode.DataType,
      text: 'MRG-1 names the same patient as PID-3; nothing to merge',
      location: { segment: 'MRG', sequence, field: 1 },
    });
  }

  const old: Patient = {
    resourceType: 'Patient',
    identifier: prior,
    active: false,
    link: [{ other: localRef<Patient>(survivor.key), type: 'replaced-by' }],
  };
  const names = reps(mrg, 7)
    .map(xpnToHumanName)
    .filter((n): n is HumanName => n !== undefined);
  if (names.length) {
    old.name = names;
  }

  // The retired identifiers stay on the survivor as `old`, so later messages with them still find it.
  const identifier = mergeIdentifiers(survivor.resource.identifier, retired.map((id): Identifier => ({ ...id, use: 'old' })));
  const merged: ResourcePlan<Patient> = {
    ...survivor,
    resource: { ...survivor.resource, identifier, link: [...(survivor.resource.link ?? []), { other: localRef<Patient>(oldKey), type: 'replaces' }] },
  };
  return [merged, { key: oldKey, resource: old, identifiers: retired, merge: 'overlay' }];
}
