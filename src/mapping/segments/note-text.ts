import type { Hl7Context, Hl7Segment } from '@medplum/core';
import type { FieldRep } from '../../hl7/fields.ts';
import { reps } from '../../hl7/fields.ts';

/**
 * A text repetition (ST, TX, FT) as one string. Text types have no components, but senders do
 * not always escape `^` and `&` in free text: the pieces are joined back with the message's own
 * separators so no text is lost.
 * @param rep - The repetition (escapes already decoded).
 * @param context - The message's delimiters.
 * @returns The text; '' for an empty or `""` repetition.
 */
export function repText(rep: FieldRep, context: Hl7Context): string {
  if (rep.isNull) {
    return '';
  }
  return rep.components.map((c) => c.join(context.subcomponentSeparator)).join(context.componentSeparator);
}

/**
 * NTE-3 (comment, FT) of several NTE segments as one text: every repetition and every segment is
 * a line (the IG: "multiple comments yield line feeds"); escapes, `\.br\` included, are decoded.
 * Empty and `""` comments are skipped.
 * @param ntes - The NTE segments, in message order.
 * @returns The text, or undefined when there is none.
 */
export function noteText(ntes: readonly Hl7Segment[]): string | undefined {
  const lines = ntes.flatMap((nte) =>
    reps(nte, 3)
      .map((r) => repText(r, nte.context))
      .filter((line) => line.trim() !== '')
  );
  const text = lines.join('\n').trim();
  return text || undefined;
}
