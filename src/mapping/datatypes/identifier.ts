import type { Identifier } from '@medplum/fhirtypes';
import type { ErrorLocation } from '../../hl7/ack.ts';
import type { FieldRep } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { hl7TableCoding } from './coding.ts';

/**
 * @param code - A v2 identifier type code (table 0203), e.g. MR, PLAC.
 * @returns The FHIR `Identifier.type`, or undefined for an empty code.
 */
export function identifierType(code: string): Identifier['type'] | undefined {
  const coding = hl7TableCoding(code, '0203');
  return coding ? { coding: [coding] } : undefined;
}

/**
 * CX → Identifier (IG datatype map): CX.1 value, CX.4 assigning authority → system (through the
 * context's NamingSystems), CX.5 → type, CX.7/CX.8 → period.
 * @param cx - One repetition of a CX field.
 * @param ctx - The mapping context.
 * @param location - Where it was read.
 * @returns The identifier, or undefined when CX.1 is empty.
 */
export function cxToIdentifier(cx: FieldRep, ctx: MappingContext, location: ErrorLocation): Identifier | undefined {
  const value = cx.get(1).trim();
  if (!value || cx.isNull) {
    return undefined;
  }
  const typeCode = cx.get(5);
  const system = ctx.identifierSystem(
    { namespace: cx.sub(4, 1), universalId: cx.sub(4, 2), universalIdType: cx.sub(4, 3) },
    typeCode,
    location
  );
  const identifier: Identifier = { system, value };
  const type = identifierType(typeCode);
  if (type) {
    identifier.type = type;
  }
  const start = cx.get(7) ? ctx.date(cx.get(7), location) : undefined;
  const end = cx.get(8) ? ctx.date(cx.get(8), location) : undefined;
  if (start || end) {
    identifier.period = { ...(start ? { start } : {}), ...(end ? { end } : {}) };
  }
  return identifier;
}

/**
 * EI (entity identifier: order numbers, specimen ids) → Identifier: EI.1 value, EI.2 namespace,
 * EI.3/EI.4 universal id and type → system.
 * @param ei - The EI (a repetition, or a component viewed with `nested`).
 * @param ctx - The mapping context.
 * @param typeCode - Identifier type (PLAC, FILL, ...).
 * @param location - Where it was read.
 * @returns The identifier, or undefined when EI.1 is empty.
 */
export function eiToIdentifier(ei: FieldRep, ctx: MappingContext, typeCode: string, location: ErrorLocation): Identifier | undefined {
  const value = ei.get(1).trim();
  if (!value || ei.isNull) {
    return undefined;
  }
  const system = ctx.identifierSystem({ namespace: ei.get(2), universalId: ei.get(3), universalIdType: ei.get(4) }, typeCode, location);
  const identifier: Identifier = { system, value };
  const type = identifierType(typeCode);
  if (type) {
    identifier.type = type;
  }
  return identifier;
}
