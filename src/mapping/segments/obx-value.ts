import type { Attachment, Observation, Quantity } from '@medplum/fhirtypes';
import type { ErrorLocation } from '../../hl7/ack.ts';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import type { FieldRep } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { decodeEd, mimeType, storedContent } from '../datatypes/ed.ts';
import { parseNm, snToValue } from '../datatypes/quantity.ts';
import type { AttachmentUpload } from '../plan.ts';
import { quantityUnits } from '../datatypes/units.ts';

/** The value[x] choices an OBX maps to. */
export type ValueKey = 'valueQuantity' | 'valueString' | 'valueCodeableConcept' | 'valueRange' | 'valueRatio' | 'valueDateTime' | 'valueTime' | 'valuePeriod';

/** Every value[x] choice the OBX map may write, so a correction can clear the ones it does not. */
export const VALUE_KEYS: readonly ValueKey[] = [
  'valueQuantity',
  'valueString',
  'valueCodeableConcept',
  'valueRange',
  'valueRatio',
  'valueDateTime',
  'valueTime',
  'valuePeriod',
];

/** One value: exactly one value[x] element. */
export type ValueFields = Pick<Observation, ValueKey>;

/** An embedded or referenced document (OBX-2 ED or RP). */
export interface DocumentContent {
  /** The attachment, without `data` (the writer stores the content as a Binary and sets `url`). */
  readonly attachment: Attachment;
  /** The content to store (ED only). */
  readonly upload?: Omit<AttachmentUpload, 'path'>;
}

/** What OBX-5 holds, by OBX-2. */
export interface ObxValue {
  /** A single value (text repetitions are joined into one string). */
  readonly value?: ValueFields;
  /** Repeated non-text values: one Observation.component each (IG OBX[Observation-Component]). */
  readonly components?: ValueFields[];
  /** Documents (ED, RP with a URL): DiagnosticReport.presentedForm, not an Observation value. */
  readonly documents?: DocumentContent[];
}

const TEXT_TYPES = new Set(['ST', 'TX', 'FT']);
const CODED_TYPES = new Set(['CWE', 'CE', 'CNE', 'CF']);
const COMPARATOR = /^(<=|>=|<|>)\s*([+-]?(\d+(\.\d*)?|\.\d+))$/;

/**
 * OBX-5 → Observation value[x] by OBX-2 (IG OBX[Observation] map): NM → valueQuantity (OBX-6
 * units); SN → Quantity, Range, Ratio or string; ST/TX/FT → valueString (escapes decoded, FT
 * `\.br\` line breaks kept, repetitions joined with line breaks); CWE/CE/CNE/CF →
 * valueCodeableConcept; DT/DTM/TS → valueDateTime; TM → valueTime; DR → valuePeriod; ED and RP
 * (with a URL) → a document; other types → valueString. An NM that is not a number is not
 * dropped: a comparator form (`<0.5`) becomes a Quantity with a comparator, anything else is
 * kept as valueString, both with a warning. Repetitions of a non-text type become components.
 * @param valueType - OBX-2.
 * @param values - The OBX-5 repetitions (of one OBX or of text continuation OBX segments).
 * @param units - OBX-6.
 * @param ctx - The mapping context.
 * @param location - OBX-5's location, for warnings.
 * @returns The value(s), or an empty result when nothing could be read.
 */
export function obxValue(valueType: string, values: readonly FieldRep[], units: FieldRep | undefined, ctx: MappingContext, location: ErrorLocation): ObxValue {
  const type = valueType.trim().toUpperCase();
  const present = values.filter((v) => !v.isNull);
  if (present.length === 0) {
    return {};
  }
  if (TEXT_TYPES.has(type) || !type) {
    if (!type && present.some((v) => !v.isEmpty())) {
      ctx.warn({ code: Hl7ErrorCode.DataType, text: 'OBX-2 (value type) is empty; OBX-5 kept as text', location });
    }
    const text = present
      .map(repText)
      .join('\n')
      .replace(/^(\s*\n)+/, '')
      .replace(/\s+$/, '');
    return text ? { value: { valueString: text } } : {};
  }
  if (type === 'ED') {
    const documents = present.map((v) => edDocument(v, ctx, location)).filter((d) => d !== undefined);
    return documents.length ? { documents } : {};
  }
  if (type === 'RP') {
    // A pointer that is a URL is a document reference; any other pointer is only meaningful to
    // the sender's application and is kept as text.
    const documents = present.map(rpDocument).filter((d) => d !== undefined);
    const pointers = present.filter((v) => !rpDocument(v)).map((v) => v.get(1).trim()).filter(Boolean);
    return {
      ...(documents.length ? { documents } : {}),
      ...(pointers.length ? { value: { valueString: pointers.join('\n') } } : {}),
    };
  }
  const converted = present.map((v) => singleValue(type, v, units, ctx, location)).filter((v) => v !== undefined);
  if (converted.length === 0) {
    return {};
  }
  return converted.length === 1 ? { value: converted[0] } : { components: converted };
}

function singleValue(type: string, value: FieldRep, units: FieldRep | undefined, ctx: MappingContext, location: ErrorLocation): ValueFields | undefined {
  if (value.isEmpty()) {
    return undefined;
  }
  switch (type) {
    case 'NM':
      return numericValue(value.get(1), units, ctx, location);
    case 'SN': {
      const sn = snToValue(value);
      const unit = quantityUnits(units, ctx);
      if (!sn) {
        return undefined;
      }
      if (sn.kind === 'quantity') {
        return { valueQuantity: { ...sn.value, ...unit } };
      }
      if (sn.kind === 'range') {
        return { valueRange: { low: { ...sn.value.low, ...unit }, high: { ...sn.value.high, ...unit } } };
      }
      return sn.kind === 'ratio' ? { valueRatio: sn.value } : { valueString: sn.value };
    }
    case 'DT': {
      const date = ctx.date(value.get(1), location);
      return date ? { valueDateTime: date } : undefined;
    }
    case 'TM': {
      const time = ctx.time(value.get(1), location);
      return time ? { valueTime: time } : undefined;
    }
    case 'DTM':
    case 'TS': {
      const dateTime = ctx.dateTime(value.sub(1, 1), location);
      return dateTime ? { valueDateTime: dateTime } : undefined;
    }
    case 'DR': {
      const start = ctx.dateTime(value.sub(1, 1), location);
      const end = ctx.dateTime(value.sub(2, 1), location);
      return start || end ? { valuePeriod: { ...(start ? { start } : {}), ...(end ? { end } : {}) } } : undefined;
    }
    default:
      if (CODED_TYPES.has(type)) {
        const concept = cweToCodeableConcept(value, ctx);
        return concept ? { valueCodeableConcept: concept } : undefined;
      }
      // ID, IS, NA, CX, XCN and other composite types: their text, as sent.
      return { valueString: value.components.map((c) => c.join('&')).filter(Boolean).join(' ') };
  }
}

function numericValue(text: string, units: FieldRep | undefined, ctx: MappingContext, location: ErrorLocation): ValueFields {
  const unit = quantityUnits(units, ctx);
  const n = parseNm(text);
  if (n !== undefined) {
    return { valueQuantity: { value: n, ...unit } };
  }
  const comparator = COMPARATOR.exec(text.trim());
  if (comparator) {
    ctx.warn({ code: Hl7ErrorCode.DataType, text: 'OBX-5 has a comparator but OBX-2 is NM (should be SN); read as a Quantity with a comparator', location });
    return { valueQuantity: { value: Number(comparator[2]), comparator: comparator[1] as Quantity['comparator'], ...unit } };
  }
  ctx.warn({ code: Hl7ErrorCode.DataType, text: 'OBX-5 is not a number but OBX-2 is NM; kept as text', location });
  return { valueString: text.trim() };
}

/** @returns The text of one repetition: components rejoined with `^` (an unescaped `^` in text). */
function repText(value: FieldRep): string {
  return value.components
    .map((c) => c.join('&'))
    .join('^')
    .replace(/\^+$/, '')
    .replace(/\s+$/, '');
}

/**
 * ED (OBX-2 ED) → attachment and content: ED.2/ED.3 → contentType, ED.4 encoding (Base64, Hex,
 * A = text) and ED.5 data → the bytes; `hash` is the base64 SHA-1 of the bytes (deterministic,
 * so a re-sent document is stored once), `size` their length.
 */
function edDocument(value: FieldRep, ctx: MappingContext, location: ErrorLocation): DocumentContent | undefined {
  if (!value.get(5).trim()) {
    return undefined;
  }
  const content = decodeEd(value);
  if (!content) {
    const encoding = value.get(4).trim().toUpperCase();
    ctx.warn({ code: Hl7ErrorCode.DataType, text: `OBX-5 embedded data cannot be decoded (encoding '${encoding || 'none'}'); document not stored`, location });
    return undefined;
  }
  return storedContent(content);
}

/** RP (reference pointer) with an absolute URL → an attachment pointing at it. */
function rpDocument(value: FieldRep): DocumentContent | undefined {
  const pointer = value.get(1).trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(pointer)) {
    return undefined;
  }
  const type = value.get(3);
  const subtype = value.get(4);
  return { attachment: { url: pointer, ...(type || subtype ? { contentType: mimeType(type, subtype) } : {}) } };
}
