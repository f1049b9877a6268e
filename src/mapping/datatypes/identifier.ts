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
 * @param defaultTypeCode - Identifier type (table 0203) to use when CX.5 is blank, for fields whose
 * meaning fixes the type (PV1-19 is a visit number, `VN`).
 * @returns The identifier, or undefined when CX.1 is empty.
 */
export function cxToIdentifier(cx: FieldRep, ctx: MappingContext, location: ErrorLocation, defaultTypeCode?: string): Identifier | undefined {
  const value = cx.get(1).trim();
  if (!value || cx.isNull) {
    return undefined;
  }
  const sentTypeCode = cx.get(5);
  const typeCode = defaultTypeCode && !sentTypeCode.trim() ? defaultTypeCode : sentTypeCode;
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
  const start = ctx.date(cx.get(7), location);
  const end = ctx.date(cx.get(8), location);
  if (start || end) {
    identifier.period = { ...(start ? { start } : {}), ...(end ? { end } : {}) };
  }
  return identifier;
}

/** How {@link eiToIdentifier} reads the assigning authority of an EI. */
export interface EiAuthorityOptions {
  /**
   * What scopes the sender-local system of an EI without an authority (default: the type code),
   * e.g. `document`, so a bare document number never shares a system with a bare order number.
   */
  readonly scope?: string;
  /** Trim EI.2-EI.4 before they are looked up. */
  readonly trimAuthority?: boolean;
}

/**
 * EI (entity identifier: order numbers, specimen ids) → Identifier: EI.1 value, EI.2 namespace,
 * EI.3/EI.4 universal id and type → system.
 * @param ei - The EI (a repetition, or a component viewed with `nested`).
 * @param ctx - The mapping context.
 * @param typeCode - Identifier type (PLAC, FILL, ...); '' for none.
 * @param location - Where it was read.
 * @param options - How the authority is read (scope of a system without one, trimming).
 * @returns The identifier, or undefined when EI.1 is empty.
 */
export function eiToIdentifier(
  ei: FieldRep,
  ctx: MappingContext,
  typeCode: string,
  location: ErrorLocation,
  options: EiAuthorityOptions = {}
): Identifier | undefined {
  const value = ei.get(1).trim();
  if (!value || ei.isNull) {
    return undefined;
  }
  const part = (component: number): string => (options.trimAuthority ? ei.get(component).trim() : ei.get(component));
  const authority = { namespace: part(2), universalId: part(3), universalIdType: part(4) };
  const system = ctx.identifierSystem(authority, options.scope ?? typeCode, location);
  const identifier: Identifier = { system, value };
  const type = identifierType(typeCode);
  if (type) {
    identifier.type = type;
  }
  return identifier;
}
