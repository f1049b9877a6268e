import type { Identifier } from '@medplum/fhirtypes';
import type { ErrorLocation } from '../../hl7/ack.ts';
import type { FieldRep } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { eiToIdentifier } from '../datatypes/identifier.ts';

/**
 * EI → Identifier for ids that are not order numbers (document numbers, appointment ids): like
 * `eiToIdentifier`, the assigning authority (EI.2-EI.4, trimmed) picks the system through the
 * NamingSystems, but an EI without an authority gets a system scoped to the sender *and* to what
 * the id numbers (`scope`), so a bare document number never collides with a bare order number of
 * the same sender.
 * @param ei - The EI (a repetition, or a component viewed with `nested`).
 * @param ctx - The mapping context.
 * @param scope - What the id numbers, e.g. `document`, `appointment-filler`.
 * @param location - Where it was read.
 * @param typeCode - Optional identifier type (table 0203), e.g. `FILL`.
 * @returns The identifier, or undefined when EI.1 is empty or `""`.
 */
export function scopedEiIdentifier(
  ei: FieldRep | undefined,
  ctx: MappingContext,
  scope: string,
  location: ErrorLocation,
  typeCode?: string
): Identifier | undefined {
  return ei ? eiToIdentifier(ei, ctx, typeCode ?? '', location, { scope, trimAuthority: true }) : undefined;
}
