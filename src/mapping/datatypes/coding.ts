import type { CodeableConcept, Coding } from '@medplum/fhirtypes';
import type { FieldRep } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';

/**
 * CWE/CE/CNE → CodeableConcept (IG datatype map): the identifier triplets CWE.1-3, CWE.4-6 and
 * CWE.10-12 become codings (system from table 0396 through the context: LN → LOINC, SCT → SNOMED
 * CT, I10 → ICD-10-CM, local names → the sender's own system), CWE.7/CWE.8 versions, CWE.9 (or
 * the first display) → text. Where a ConceptMap translates a local code, the standard coding is
 * added after the sender's.
 * @param cwe - One repetition of a CWE field.
 * @param ctx - The mapping context.
 * @param defaultSystemName - Coding-system name to assume when CWE.3 is empty, for fields bound
 * to an HL7 table (e.g. `HL70002` for marital status).
 * @returns The concept, or undefined when empty.
 */
export function cweToCodeableConcept(cwe: FieldRep, ctx: MappingContext, defaultSystemName?: string): CodeableConcept | undefined {
  if (cwe.isNull) {
    return undefined;
  }
  const coding: Coding[] = [];
  const triplets: [number, number, number, number][] = [
    [1, 2, 3, 7],
    [4, 5, 6, 8],
    [10, 11, 12, 0],
  ];
  for (const [codeAt, displayAt, systemAt, versionAt] of triplets) {
    // FHIR codes are single-spaced without leading or trailing whitespace.
    const code = cwe.get(codeAt).trim().replace(/\s+/g, ' ');
    const display = cwe.get(displayAt).trim();
    if (!code) {
      continue;
    }
    const system = ctx.codeSystem(cwe.get(systemAt) || (codeAt === 1 && defaultSystemName ? defaultSystemName : ''));
    const entry: Coding = { system, code };
    if (display) {
      entry.display = display;
    }
    const version = versionAt ? cwe.get(versionAt).trim() : '';
    if (version) {
      entry.version = version;
    }
    if (!coding.some((c) => c.system === system && c.code === code)) {
      coding.push(entry);
    }
  }
  for (const original of [...coding]) {
    for (const translated of ctx.translate(original.system as string, original.code as string)) {
      if (!coding.some((c) => c.system === translated.system && c.code === translated.code)) {
        coding.push(translated);
      }
    }
  }
  const text = cwe.get(9).trim() || coding.find((c) => c.display)?.display || (coding.length ? undefined : cwe.get(2).trim());
  if (coding.length === 0 && !text) {
    return undefined;
  }
  const concept: CodeableConcept = {};
  if (coding.length) {
    concept.coding = coding;
  }
  if (text) {
    concept.text = text;
  }
  return concept;
}

/**
 * A code sent with its coding method and description in neighbouring fields (DG1-2/3/4, PR1-2/3/4):
 * the coding method is the default coding system, and the description is the text when CWE.9 has
 * none (alone, when there is no code).
 * @param cwe - The code field's repetition, if any.
 * @param codingMethod - The coding-method field (a table 0396 name), possibly empty.
 * @param description - The description field, possibly empty.
 * @param ctx - The mapping context.
 * @returns The concept, or undefined when both the code and the description are empty.
 */
export function describedConcept(
  cwe: FieldRep | undefined,
  codingMethod: string,
  description: string,
  ctx: MappingContext
): CodeableConcept | undefined {
  const concept = cwe ? cweToCodeableConcept(cwe, ctx, codingMethod.trim() || undefined) : undefined;
  const text = description.trim();
  if (!concept) {
    return text ? { text } : undefined;
  }
  return text && !cwe?.get(9).trim() ? { ...concept, text } : concept;
}

/**
 * A coded value (ID/IS) from an HL7 table as a Coding.
 * @param code - The code as sent.
 * @param table - The HL7 table number, e.g. `0004`.
 * @param display - Optional display.
 * @returns The coding, or undefined for an empty code.
 */
export function hl7TableCoding(code: string, table: string, display?: string): Coding | undefined {
  const trimmed = code.trim().replace(/\s+/g, ' ');
  if (!trimmed) {
    return undefined;
  }
  return { system: `http://terminology.hl7.org/CodeSystem/v2-${table}`, code: trimmed, ...(display ? { display } : {}) };
}
