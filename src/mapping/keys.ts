import type { CodeableConcept, Identifier } from '@medplum/fhirtypes';
import { HUB_SID } from '../constants.ts';
import type { MappingContext } from './context.ts';
import { slug } from './context.ts';

/**
 * Synthetic business identifiers for resources whose HL7 source has no identifier of its own
 * (an allergy, a next of kin, a result observation). Each is derived from identifiers that do
 * exist (the patient's, the order's) plus what distinguishes the item within them, so the same
 * message always yields the same identifier: a re-sent message finds what it wrote before.
 */

/**
 * @param kind - What is identified, e.g. `allergy`, `observation`.
 * @param _ctx - The mapping context (kept for future scoping rules).
 * @param parts - The distinguishing values; empty parts are kept so positions stay stable. They
 * start with an identifier token (the patient's, the order's) that is already globally unique, so
 * the system is not scoped to the sender: the same allergy or result sent by two feeds is one
 * resource.
 * @returns `{ system: <hub sid>/<kind>, value: parts joined with '^' }`. (Not `|`: a token search
 * splits `system|value` at every `|`, so a value must not contain one.)
 */
export function syntheticIdentifier(kind: string, _ctx: MappingContext, parts: readonly string[]): Identifier {
  return {
    system: `${HUB_SID}/${slug(kind)}`,
    value: parts.map((p) => p.trim().replaceAll('|', '^')).join('^'),
  };
}

/**
 * @param identifier - An identifier.
 * @returns `system^value`, the stable text form used inside synthetic identifiers and plan keys.
 */
export function identifierToken(identifier: Identifier | undefined): string {
  return identifier ? `${identifier.system ?? ''}^${identifier.value ?? ''}` : '';
}

/**
 * How a concept without codings is written in its token: its text as sent (`text`), or marked and
 * lower-cased (`prefixed`, `text^<text>`) so free-text diagnoses, procedures and allergens that
 * differ only in case are one resource and never collide with a `system^code` token.
 */
export type ConceptTextForm = 'text' | 'prefixed';

/**
 * @param concept - A concept (from `cweToCodeableConcept`), if any.
 * @param textForm - How a concept without codings is written (default `text`).
 * @returns The first coding as `system^code`, else the concept's text in `textForm`, else ''.
 */
export function conceptToken(concept: CodeableConcept | undefined, textForm: ConceptTextForm = 'text'): string {
  const coding = concept?.coding?.[0];
  if (coding) {
    return `${coding.system ?? ''}^${coding.code ?? ''}`;
  }
  const text = concept?.text ?? '';
  if (textForm === 'text') {
    return text;
  }
  return text ? `text^${text.trim().toLowerCase()}` : '';
}
