import type { Practitioner } from '@medplum/fhirtypes';
import type { ErrorLocation } from '../../hl7/ack.ts';
import type { FieldRep } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { identifierType } from './identifier.ts';

/**
 * XCN → Practitioner (IG datatype map): XCN.1 id with XCN.9 assigning authority (and XCN.13
 * type) → identifier, XCN.2-XCN.7 → name (family, given, middle, suffix, prefix, degree).
 * @param xcn - One repetition of an XCN field.
 * @param ctx - The mapping context.
 * @param location - Where it was read.
 * @returns The Practitioner (without id), or undefined when XCN.1 is empty: a practitioner
 * without an identifier cannot be found again, so it is not created (its name may still be used
 * as a reference display).
 */
export function xcnToPractitioner(xcn: FieldRep, ctx: MappingContext, location: ErrorLocation): Practitioner | undefined {
  const value = xcn.get(1).trim();
  if (!value || xcn.isNull) {
    return undefined;
  }
  const typeCode = xcn.get(13) || 'PRN';
  const system = ctx.identifierSystem(
    { namespace: xcn.sub(9, 1), universalId: xcn.sub(9, 2), universalIdType: xcn.sub(9, 3) },
    typeCode,
    location
  );
  const practitioner: Practitioner = {
    resourceType: 'Practitioner',
    identifier: [{ system, value, ...(identifierType(xcn.get(13)) ? { type: identifierType(xcn.get(13)) } : {}) }],
  };
  const name = xcnName(xcn);
  if (name) {
    practitioner.name = [name];
  }
  return practitioner;
}

/**
 * @param xcn - One repetition of an XCN field.
 * @returns "Given Family" for reference displays, or undefined.
 */
export function xcnDisplay(xcn: FieldRep): string | undefined {
  const name = xcnName(xcn);
  const text = [name?.prefix?.join(' '), name?.given?.join(' '), name?.family, name?.suffix?.join(' ')].filter(Boolean).join(' ');
  return text || undefined;
}

function xcnName(xcn: FieldRep): Practitioner['name'] extends (infer N)[] | undefined ? N | undefined : never {
  const family = xcn.sub(2, 1).trim();
  const given = [xcn.get(3), xcn.get(4)].map((g) => g.trim()).filter(Boolean);
  if (!family && !given.length) {
    return undefined;
  }
  const suffix = [xcn.get(5), xcn.get(7)].map((s) => s.trim()).filter(Boolean);
  const prefix = [xcn.get(6)].map((p) => p.trim()).filter(Boolean);
  return {
    ...(family ? { family } : {}),
    ...(given.length ? { given } : {}),
    ...(prefix.length ? { prefix } : {}),
    ...(suffix.length ? { suffix } : {}),
  };
}
