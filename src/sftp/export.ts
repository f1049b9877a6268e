import type { MedplumClient, WithId } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import type { Endpoint, Observation, Patient, ProjectSetting, Task } from '@medplum/fhirtypes';
import { HUB_URI } from '../constants.ts';
import { acquireLock, LockKind, releaseLock } from '../fhir/lock.ts';
import { formatCsv } from '../roster/csv.ts';
import { connectSftp } from './client.ts';
import type { SftpServer } from './source.ts';
import { extensionString, readSftpServer } from './source.ts';

/** `Endpoint.connectionType` of a partner SFTP folder the hub writes scheduled exports to. */
export const SFTP_OUTBOUND_CONNECTION = { system: `${HUB_URI}/CodeSystem/endpoint-connection-type`, code: 'sftp-outbound' } as const;
/** Task code of one export run. */
export const EXPORT_TASK_CODE = { system: `${HUB_URI}/CodeSystem/hub-task`, code: 'sftp-export' } as const;
/** Extensions of an export Endpoint. */
export const ExportExtension = {
  /** The Observations exported: a FHIR search (e.g. `Observation?category=laboratory&status=final`). */
  query: `${HUB_URI}/StructureDefinition/sftp-export-query`,
  /** File name prefix; the file is `<prefix><yyyymmddThhmmss>.csv`. */
  filePrefix: `${HUB_URI}/StructureDefinition/sftp-export-file-prefix`,
} as const;

/** The columns of a results file (docs/file-formats.md). */
export const RESULT_COLUMNS = [
  'observation_id',
  'patient_id',
  'patient_identifier_system',
  'patient_identifier',
  'code_system',
  'code',
  'display',
  'value',
  'unit',
  'status',
  'effective',
  'last_updated',
] as const;

/** A scheduled export to a partner folder. */
export interface SftpExport extends SftpServer {
  /** The search, without `_lastUpdated` (the export adds the window). */
  readonly query: string;
  readonly prefix: string;
}

/**
 * Reads an export from its Endpoint: the SFTP server and folder, and the search it exports.
 * @param endpoint - The Endpoint.
 * @param secrets - `event.secrets`.
 * @returns The export, or what is wrong with its configuration.
 */
export function readSftpExport(endpoint: Endpoint, secrets: Record<string, ProjectSetting> | undefined): { export: SftpExport } | { problems: string[] } {
  const server = readSftpServer(endpoint, secrets);
  const query = extensionString(endpoint, ExportExtension.query);
  const problems = 'problems' in server ? [...server.problems] : [];
  if (!query?.startsWith('Observation?') && query !== 'Observation') {
    problems.push(`Endpoint/${endpoint.id}: ${ExportExtension.query} must be an Observation search`);
  }
  if (problems.length || 'problems' in server) {
    return { problems };
  }
  return { export: { ...server.server, query: query as string, prefix: extensionString(endpoint, ExportExtension.filePrefix) ?? 'results-' } };
}

/** What one export run did. */
export interface ExportReport {
  readonly export: string;
  readonly rows: number;
  /** The file written (absent when there was nothing new). */
  readonly file?: string;
  readonly task?: string;
  readonly skipped?: string;
}

/**
 * Runs one export: the Observations matching the search that changed since the end of the last
 * completed run (its Task's `executionPeriod.end`) up to now, as a CSV results file written to
 * the partner folder under a temporary name and renamed once complete, so the partner never
 * reads half a file. Each run is a Task (the window, the file, the row count); a failed run is
 * recorded and the next run covers its window again.
 * @param medplum - The client.
 * @param exp - The export.
 * @param now - The end of the window.
 * @returns What was done.
 */
export async function runExport(medplum: MedplumClient, exp: SftpExport, now = new Date()): Promise<ExportReport> {
  const lease = await acquireLock(medplum, LockKind.sftpSource, `export-${exp.endpoint.replace('/', '-')}`, 'Bot/sftp-export');
  if (!lease) {
    return { export: exp.name, rows: 0, skipped: 'another run is exporting' };
  }
  try {
    const [last] = await medplum.searchResources('Task', {
      code: `${EXPORT_TASK_CODE.system}|${EXPORT_TASK_CODE.code}`,
      owner: exp.endpoint,
      status: 'completed',
      _sort: '-authored-on',
      _count: '1',
    });
    const since = last?.executionPeriod?.end ?? '1970-01-01T00:00:00.000Z';
    const until = now.toISOString();
    const task = await medplum.createResource<Task>({
      resourceType: 'Task',
      status: 'in-progress',
      intent: 'order',
      code: { coding: [{ ...EXPORT_TASK_CODE }], text: 'Scheduled export to a partner SFTP folder' },
      owner: { reference: exp.endpoint },
      authoredOn: until,
      executionPeriod: { start: since, end: until },
    });
    try {
      const observations = await changedObservations(medplum, exp.query, since, until);
      let file: string | undefined;
      if (observations.length) {
        const patients = await subjectsOf(medplum, observations);
        const csv = formatCsv([[...RESULT_COLUMNS], ...observations.map((o) => resultRow(o, patients))]);
        file = `${exp.folder.replace(/\/$/, '')}/${exp.prefix}${until.replace(/[-:.]/g, '').slice(0, 18)}.csv`;
        const connection = await connectSftp(exp);
        try {
          await connection.write(file, csv);
        } finally {
          await connection.close();
        }
      }
      // Only this run writes its Task: no need to read it back first.
      await medplum.updateResource<Task>({
        ...task,
        status: 'completed',
        output: [
          { type: { text: 'rows' }, valueInteger: observations.length },
          ...(file ? [{ type: { text: 'file' }, valueString: file }] : []),
        ],
      });
      return { export: exp.name, rows: observations.length, file, task: `Task/${task.id}` };
    } catch (err) {
      await medplum
        .updateResource<Task>({ ...task, status: 'failed', businessStatus: { text: normalizeErrorString(err) } })
        .catch(() => undefined);
      throw err;
    }
  } finally {
    await releaseLock(medplum, lease);
  }
}

async function changedObservations(medplum: MedplumClient, query: string, since: string, until: string): Promise<WithId<Observation>[]> {
  const search = new URLSearchParams(query.includes('?') ? query.slice(query.indexOf('?') + 1) : '');
  search.append('_lastUpdated', `gt${since}`);
  search.append('_lastUpdated', `le${until}`);
  search.set('_sort', '_lastUpdated');
  search.set('_count', '1000');
  const result: WithId<Observation>[] = [];
  for await (const page of medplum.searchResourcePages('Observation', search)) {
    result.push(...page);
  }
  return result;
}

async function subjectsOf(medplum: MedplumClient, observations: readonly Observation[]): Promise<Map<string, Patient>> {
  const references = [...new Set(observations.map((o) => o.subject?.reference).filter((r): r is string => Boolean(r?.startsWith('Patient/'))))];
  const patients = new Map<string, Patient>();
  for (let i = 0; i < references.length; i += 100) {
    const slice = references.slice(i, i + 100);
    const response = await medplum.executeBatch({ resourceType: 'Bundle', type: 'batch', entry: slice.map((url) => ({ request: { method: 'GET', url } })) });
    slice.forEach((reference, j) => {
      const resource = response.entry?.[j]?.resource;
      if (resource?.resourceType === 'Patient') {
        patients.set(reference, resource);
      }
    });
  }
  return patients;
}

/**
 * @param observation - An Observation.
 * @param patients - Its subject, by reference.
 * @returns Its row in a results file.
 */
export function resultRow(observation: WithId<Observation>, patients: ReadonlyMap<string, Patient>): string[] {
  const patient = observation.subject?.reference ? patients.get(observation.subject.reference) : undefined;
  const mrn = patient?.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'MR')) ?? patient?.identifier?.[0];
  const coding = observation.code?.coding?.[0];
  const value =
    observation.valueQuantity?.value?.toString() ??
    observation.valueString ??
    observation.valueCodeableConcept?.coding?.[0]?.code ??
    observation.valueCodeableConcept?.text ??
    (observation.valueBoolean === undefined ? '' : String(observation.valueBoolean));
  return [
    observation.id,
    patient?.id ?? '',
    mrn?.system ?? '',
    mrn?.value ?? '',
    coding?.system ?? '',
    coding?.code ?? '',
    coding?.display ?? observation.code?.text ?? '',
    value,
    observation.valueQuantity?.unit ?? observation.valueQuantity?.code ?? '',
    observation.status,
    observation.effectiveDateTime ?? observation.effectiveInstant ?? observation.effectivePeriod?.start ?? '',
    observation.meta?.lastUpdated ?? '',
  ];
}
