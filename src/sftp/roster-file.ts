import type { MedplumClient } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import { classifyFailure } from '../fhir/failures.ts';
import { senderOrganizationId } from '../fhir/owner.ts';
import { CommitError, commitPlan, IdentityConflictError } from '../fhir/writer.ts';
import { loadMappingConfig } from '../inbound/config.ts';
import { readRoster } from '../roster/roster.ts';
import type { FileResult } from './formats.ts';
import { FileOutcome } from './ledger.ts';
import type { SftpSource } from './source.ts';

/**
 * A CSV patient roster (docs/file-formats.md): every row is mapped with the sender's mapping
 * configuration and written with the same resolve-then-commit writer as HL7 messages, so a row
 * sent again changes nothing and a patient known from HL7 is the same Patient. Rows are
 * independent: a bad row is reported with its line number and the good rows are written. A file
 * with any bad row goes to the error folder (its reason file lists the lines) so the partner can
 * fix and resend it; resent, the good rows change nothing.
 * @param medplum - The client.
 * @param source - The source (sender facility for the mapping configuration).
 * @param text - The file content.
 * @returns The result.
 */
export async function processRosterFile(medplum: MedplumClient, source: SftpSource, text: string): Promise<FileResult> {
  const config = await loadMappingConfig(medplum, source.senderFacility ?? '');
  const roster = readRoster(text, { config, sender: source.senderFacility ?? source.name });
  const reasons = [...roster.problems.map((p) => `line ${p.line}: ${p.message}`)];
  const ownerOrganization = senderOrganizationId(config.senders, source.senderFacility ?? '');
  let written = 0;
  for (const row of roster.rows) {
    if (!row.plan) {
      reasons.push(...row.errors);
      continue;
    }
    try {
      await commitPlan(medplum, row.plan, { ownerOrganization });
      written++;
    } catch (err) {
      // A row the server refuses is the row's problem; a server or network failure is not: the
      // file stays for the next poll (rows already written change nothing then).
      if (!(err instanceof IdentityConflictError) && !(err instanceof CommitError) && classifyFailure(err) !== 'refused') {
        throw err;
      }
      const why = err instanceof IdentityConflictError ? 'its identifiers match several stored patients' : `refused (${normalizeErrorString(err)})`;
      reasons.push(`line ${row.line}: ${why}`);
    }
  }
  const failed = roster.rows.length - written;
  const warnings = roster.warnings.map((w) => `line ${w.line}: ${w.message}`);
  const outcome =
    written === 0 && (failed > 0 || roster.problems.length > 0)
      ? FileOutcome.rejected
      : failed > 0 || roster.problems.length > 0
        ? FileOutcome.partlyProcessed
        : FileOutcome.processed;
  return {
    outcome,
    summary: `${roster.rows.length} row(s): ${written} written, ${failed} with errors${roster.problems.length ? `, ${roster.problems.length} file problem(s)` : ''}`,
    reasons: [...reasons, ...warnings.map((w) => `warning: ${w}`)],
    output: [
      { type: { text: 'rows' }, valueInteger: roster.rows.length },
      { type: { text: 'written' }, valueInteger: written },
      { type: { text: 'with errors' }, valueInteger: failed },
      ...reasons.slice(0, 100).map((r) => ({ type: { text: 'not written' }, valueString: r })),
      ...warnings.slice(0, 20).map((w) => ({ type: { text: 'warning' }, valueString: w })),
    ],
  };
}
