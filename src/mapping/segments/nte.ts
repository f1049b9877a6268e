import type { Annotation } from '@medplum/fhirtypes';
import { rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import type { SegmentRef } from '../groups.ts';
import { at } from '../groups.ts';
import type { ResourcePlan } from '../plan.ts';
import { practitionerRef } from './practitioner.ts';

/**
 * @param nte - An NTE segment.
 * @returns NTE-3 (comment, FT): escapes decoded (`\.br\` → line break), repetitions joined with
 * line breaks, trailing blanks trimmed; '' when empty.
 */
export function nteText(nte: SegmentRef): string {
  return reps(nte.segment, 3)
    .filter((r) => !r.isNull)
    .map((r) => r.components.map((c) => c.join('&')).join('^'))
    .join('\n')
    .replace(/\s+$/, '');
}

/**
 * NTE → Annotation (IG NTE[Observation] map): NTE-3 → text, NTE-5 (entered by, v2.6+) →
 * authorReference, NTE-6 (entered date/time) → time. One annotation per NTE that has text;
 * blank NTE segments (used as spacing lines) are skipped.
 * @param notes - The NTE segments, in message order.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far (an author with an id becomes a Practitioner).
 * @returns The annotations, possibly none.
 */
export function ntesToAnnotations(notes: readonly SegmentRef[], ctx: MappingContext, plans: ResourcePlan[]): Annotation[] {
  const result: Annotation[] = [];
  for (const nte of notes) {
    const text = nteText(nte);
    if (!text) {
      continue;
    }
    const annotation: Annotation = { text };
    const author = practitionerRef(rep(nte.segment, 5), ctx, at(nte, 5), plans);
    if (author?.reference) {
      annotation.authorReference = author;
    } else if (author?.display) {
      annotation.authorString = author.display;
    }
    const time = ctx.dateTime(val(nte.segment, 6), at(nte, 6));
    if (time) {
      annotation.time = time;
    }
    result.push(annotation);
  }
  return result;
}

/**
 * @param notes - NTE segments.
 * @returns Their texts as one block (one line per NTE, blank NTEs kept as empty lines inside
 * the block), or undefined when there is no text at all.
 */
export function ntesToText(notes: readonly SegmentRef[]): string | undefined {
  const text = notes
    .map(nteText)
    .join('\n')
    .replace(/^\s*\n+/, '')
    .replace(/\s+$/, '');
  return text || undefined;
}
