import type { MedplumClient, WithId } from '@medplum/core';
import { isNotFound, normalizeErrorString, normalizeOperationOutcome } from '@medplum/core';
import type { AuditEvent, Bundle, MessageHeader, Reference, Resource, Task } from '@medplum/fhirtypes';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { clip, hideValues } from '../fhir/strings.ts';
import { MESSAGE_HASH_SYSTEM, MESSAGE_KEY_SYSTEM, messageHash, messageKey } from '../fhir/ledger.ts';
import { tokens } from '../fhir/writer.ts';
import { readBatchFile } from '../hl7/batch.ts';
import { readHl7Message, readMessageHeader } from '../hl7/message.ts';
import { METRIPORT_MESSAGE_ID_SYSTEM, METRIPORT_SOURCE_TAG, METRIPORT_WEBHOOK_TASK_CODE } from '../metriport/constants.ts';
import { TASK_OUTCOME_SYSTEM } from '../metriport/task-outcome.ts';
import { DELIVERY_TASK_CODE } from '../outbound/delivery.ts';
import { LAB_ORDER_TASK_CODE } from '../outbound/lab-orders.ts';
import { inputOf } from '../outbound/queue.ts';
import { FILE_OUTCOME_SYSTEM, SFTP_FILE_TASK_CODE } from '../sftp/ledger.ts';
import type { DeliveryTrace, IngestionStamp, MessageIdentity, Reception, RunTrace, VersionStamp } from './trace-records.ts';
import { deliveryOf, messageHashOf, messageIdentityOf, parseSubject, receptionOf, runOf, versionOfRun, writerOf, wroteResources } from './trace-records.ts';

/**
 * `hub trace`: follows one ingestion or one resource through the hub's own records, with FHIR
 * searches a stock server supports (MessageHeader `_tag` and `focus`, Task `identifier`, `code`,
 * `focus`, `subject`, `authored-on`, `modified`, AuditEvent `entity` and `date`, `_history`),
 * paging with the server's `next` links and bounded everywhere:
 *
 * ingestion (HL7 ledger entry, SFTP file Task, Metriport webhook Task) → the resources it wrote,
 * with the versions it wrote → per version, the runs its change fired (AuditEvents: bot runs and
 * rest-hook deliveries, with trace ids) and the deliveries queued for it (partner webhook and lab
 * order Tasks: status, attempts, the destination's answer, dead-letter state). From a resource,
 * the chain is walked backwards to the messages that wrote it.
 */

/** A resource version in the chain, with what its change fired. */
export interface VersionTrace {
  readonly versionId: string;
  readonly lastUpdated: string;
  /** The ledger entry that wrote it (attributed by time), when one did. */
  readonly writtenBy?: string;
  /** AuditEvents of runs its change fired, oldest first. */
  readonly runs: RunTrace[];
  /** Deliveries queued for it (its Task focus is this version). */
  readonly deliveries: DeliveryTrace[];
}

/** A resource a message wrote or named. */
export interface WrittenTrace {
  /** `Type/id`. */
  readonly reference: string;
  /** The versions this reception wrote; empty when the message named it without changing it. */
  readonly versions: VersionTrace[];
  /** Its current version. */
  readonly current?: string;
  /** Why it could not be followed (deleted, not readable). */
  readonly problem?: string;
}

/** An SFTP file a message arrived in. */
export interface FileRef {
  /** `Task/<id>` of the file (its name is not shown: file names can carry patient data). */
  readonly task: string;
  readonly source?: string;
}

/** A reception, with where it led. */
export interface ReceptionTrace extends Reception {
  /** The resources it wrote, when the chain was walked forward from it. */
  readonly written?: WrittenTrace[];
  /** Focus references beyond the walk's bound. */
  readonly notWalked?: number;
  /** SFTP files that held this message. */
  readonly files: FileRef[];
}

/** One HL7 message (one sender, one MSH-10) and each time it was recorded. */
export interface MessageTrace extends MessageIdentity {
  /** Receptions, duplicates and replays, oldest first. */
  readonly receptions: ReceptionTrace[];
}

/** A file taken from a partner's SFTP folder. */
export interface FileTrace {
  /** `Task/<id>`. */
  readonly task: string;
  /** The SFTP source's name. */
  readonly source?: string;
  readonly received?: string;
  readonly status: string;
  /** processed, partly-processed, rejected, duplicate, error. */
  readonly outcome?: string;
  /** What processing recorded (counts; quoted values hidden). */
  readonly summary?: string;
  /** `hl7v2-batch` when the file holds HL7 messages. */
  readonly format: 'hl7v2-batch' | 'other' | 'unknown';
  readonly messageCount?: number;
  /** Its messages, in file order (at most {@link MAX_FILE_MESSAGES}). */
  readonly messages: MessageTrace[];
}

/** A Metriport webhook message. */
export interface MetriportTrace {
  /** `Task/<id>`. */
  readonly task: string;
  readonly messageId?: string;
  /** Metriport's message type, e.g. `medical.consolidated-data`. */
  readonly type?: string;
  readonly received?: string;
  readonly status: string;
  /** merged, partially-merged, no-data, error... */
  readonly outcome?: string;
  /** `Patient/<id>` whose record it merged into. */
  readonly patient?: string;
  /** created, updated, unchanged, skipped, refused. */
  readonly counts: Readonly<Record<string, number>>;
}

/** A resource traced on its own: its versions, who wrote them, what they fired. */
export interface ResourceTrace {
  /** `Type/id`. */
  readonly reference: string;
  /** The version asked for, when the subject named one. */
  readonly requestedVersion?: string;
  readonly current?: string;
  /** Versions shown, newest first. */
  readonly versions: VersionTrace[];
  /** Versions not shown (older ones, or all but the requested one). */
  readonly versionsNotShown: number;
  /** Imported from Metriport (the record-source tag). */
  readonly metriportImport: boolean;
  readonly problem?: string;
}

/** What `hub trace <subject>` found. */
export interface TraceReport {
  readonly subject: string;
  readonly found: boolean;
  /** What the subject was taken for: hl7-message, sftp-file, metriport-message, resource, delivery. */
  readonly resolvedAs: string[];
  /** Ambiguities and limits met on the way. */
  readonly notes: string[];
  readonly resource?: ResourceTrace;
  readonly messages: MessageTrace[];
  readonly files: FileTrace[];
  readonly metriport: MetriportTrace[];
}

/** Bounds of a trace. */
export interface TraceOptions {
  /** Ledger entries read, newest first, to find a bare MSH-10 (default 5000). */
  readonly ledgerScanLimit?: number;
  /** SFTP file Tasks read, newest first, to find a file name (default 1000). */
  readonly fileScanLimit?: number;
  /** Largest distance between a ledger entry and a version it wrote (default 60 s). */
  readonly attributionWindowMs?: number;
}

/** Distinct messages traced for one bare MSH-10. */
const MAX_MESSAGES = 5;
/** Ledger entries of one message (receptions, duplicates, replays). */
const MAX_RECEPTIONS = 20;
/** Resources followed per reception. */
const MAX_RESOURCES = 50;
/** Versions read from a resource's history. */
const MAX_HISTORY = 300;
/** Versions shown for a resource traced on its own. */
const MAX_VERSIONS_SHOWN = 10;
/** AuditEvents read per resource. */
const MAX_RUNS = 100;
/** Messages of a file listed; files with at most {@link WALKED_FILE_MESSAGES} are walked forward. */
const MAX_FILE_MESSAGES = 50;
const WALKED_FILE_MESSAGES = 5;
/** Candidate files checked for one message. */
const MAX_CANDIDATE_FILES = 10;
const PAGE_SIZE = 500;
/** Tolerance between a version's time and the start of a run it fired (see versionOfRun). */
const RUN_SLACK_MS = 1000;

/**
 * Traces a subject through the hub's records.
 * @param medplum - A client that may read MessageHeader, Task, AuditEvent and Binary (and the
 * resources traced): the admin client or the `ops` client.
 * @param subject - A message key `APP^FAC^CTRL`, a bare MSH-10, `MessageHeader/<id>`, a
 * Metriport messageId or its `Task/<id>`, an SFTP file name or its `Task/<id>`, a delivery
 * `Task/<id>`, or any resource `Type/id` (optionally `/_history/<vid>`).
 * @param options - Bounds.
 * @returns The chain found; `found` is false when the subject names nothing the hub recorded.
 */
export async function traceChain(medplum: MedplumClient, subject: string, options: TraceOptions = {}): Promise<TraceReport> {
  // Run details show only references to known resource types (src/ops/trace-records.ts).
  loadFhirDefinitions();
  return new Tracer(medplum, options).trace(subject);
}

/** A resource's versions, as its history gives them. */
interface History {
  readonly versions: (VersionStamp & { readonly lastUpdated: string })[];
  readonly current?: string;
  /** The current version itself; none when deleted. */
  readonly latest?: Resource;
  readonly deleted: boolean;
  readonly truncated: boolean;
}

class Tracer {
  private readonly medplum: MedplumClient;
  private readonly windowMs: number;
  private readonly ledgerScanLimit: number;
  private readonly fileScanLimit: number;
  private readonly notes: string[] = [];
  private readonly histories = new Map<string, Promise<History | string>>();
  private readonly fileMessages = new Map<string, Promise<FileMessage[] | string>>();

  constructor(medplum: MedplumClient, options: TraceOptions) {
    this.medplum = medplum;
    this.windowMs = options.attributionWindowMs ?? 60_000;
    this.ledgerScanLimit = options.ledgerScanLimit ?? 5000;
    this.fileScanLimit = options.fileScanLimit ?? 1000;
  }

  async trace(subject: string): Promise<TraceReport> {
    const parsed = parseSubject(subject);
    const report: Mutable<TraceReport> = { subject, found: false, resolvedAs: [], notes: this.notes, messages: [], files: [], metriport: [] };
    if (!parsed) {
      this.notes.push('nothing to trace: give a message id, a file name or a resource reference');
      return report;
    }
    if (parsed.kind === 'message-key') {
      await this.traceKey(report, parsed.key);
    } else if (parsed.kind === 'reference') {
      await this.traceReference(report, parsed.resourceType, parsed.id, parsed.versionId);
    } else {
      await this.traceText(report, parsed.value);
    }
    report.found = report.messages.length > 0 || report.files.length > 0 || report.metriport.length > 0 || (report.resource !== undefined && !report.resource.problem);
    return report;
  }

  // --- subjects -------------------------------------------------------------------------------

  private async traceKey(report: Mutable<TraceReport>, key: string): Promise<void> {
    const message = await this.messageByKey(key, true);
    if (message) {
      report.resolvedAs.push('hl7-message');
      report.messages.push(message);
    } else {
      this.notes.push('no HL7 ledger entry has this message key (sender application ^ facility ^ MSH-10)');
    }
  }

  private async traceText(report: Mutable<TraceReport>, value: string): Promise<void> {
    const metriport = await this.medplum.searchResources('Task', { identifier: tokens([{ system: METRIPORT_MESSAGE_ID_SYSTEM, value }]), _count: '10' });
    if (metriport.length) {
      report.resolvedAs.push('metriport-message');
      report.metriport.push(...metriport.map(metriportOf));
    }
    const keys = await this.keysEndingWith(value);
    if (keys.length) {
      report.resolvedAs.push('hl7-message');
      if (keys.length > 1) {
        this.notes.push(
          `ambiguous: ${keys.length}${keys.length > MAX_MESSAGES ? '+' : ''} senders sent a message with this MSH-10; each is traced below (give APP^FAC^CTRL to pick one)`
        );
      }
      for (const key of keys.slice(0, MAX_MESSAGES)) {
        const message = await this.messageByKey(key, true);
        if (message) {
          report.messages.push(message);
        }
      }
    }
    const files = await this.filesNamed(value);
    if (files.length) {
      report.resolvedAs.push('sftp-file');
      for (const task of files) {
        report.files.push(await this.fileTrace(task));
      }
    }
    if (report.resolvedAs.length > 1) {
      this.notes.push(`ambiguous: the subject matches ${report.resolvedAs.join(', ')}`);
    }
    if (!report.resolvedAs.includes('hl7-message') && !report.resolvedAs.includes('metriport-message')) {
      // File names can carry patient names or MRNs: such a subject is not repeated.
      report.subject = report.resolvedAs.length ? 'an SFTP file name' : 'the subject given (not repeated: it may be a file name)';
    }
    if (report.resolvedAs.length === 0) {
      this.notes.push(
        `not found: no Metriport messageId, no MSH-10 among the newest ${this.ledgerScanLimit} HL7 ledger entries and no file name among the newest ${this.fileScanLimit} SFTP files`
      );
    }
  }

  private async traceReference(report: Mutable<TraceReport>, resourceType: string, id: string, versionId: string | undefined): Promise<void> {
    if (resourceType === 'MessageHeader') {
      const entry = await this.readOrProblem<MessageHeader>('MessageHeader', id);
      if (typeof entry === 'string') {
        this.notes.push(`MessageHeader/${id}: ${entry}`);
        return;
      }
      report.resolvedAs.push('hl7-message');
      const key = messageIdentityOf(entry).key;
      const message = key ? await this.messageByKey(key, true) : undefined;
      report.messages.push(message ?? { ...messageIdentityOf(entry), receptions: [await this.receptionTrace(entry, true)] });
      return;
    }
    if (resourceType === 'Task') {
      const task = await this.readOrProblem<Task>('Task', id);
      if (typeof task === 'string') {
        this.notes.push(`Task/${id}: ${task}`);
        return;
      }
      if (await this.traceTask(report, task)) {
        return;
      }
    }
    report.resolvedAs.push('resource');
    await this.traceResource(report, `${resourceType}/${id}`, versionId);
  }

  /** @returns True when the Task is a record of the chain (file, Metriport message, delivery). */
  private async traceTask(report: Mutable<TraceReport>, task: WithId<Task>): Promise<boolean> {
    const code = task.code?.coding?.find((c) => c.system === SFTP_FILE_TASK_CODE.system)?.code;
    if (code === SFTP_FILE_TASK_CODE.code) {
      report.resolvedAs.push('sftp-file');
      report.files.push(await this.fileTrace(task));
      return true;
    }
    if (code === METRIPORT_WEBHOOK_TASK_CODE.code) {
      report.resolvedAs.push('metriport-message');
      report.metriport.push(metriportOf(task));
      return true;
    }
    const focus = task.focus?.reference;
    if ((code === DELIVERY_TASK_CODE.code || code === LAB_ORDER_TASK_CODE.code) && focus) {
      report.resolvedAs.push('delivery');
      const [type, id, , version] = focus.split('/');
      await this.traceResource(report, `${type}/${id}`, version);
      return true;
    }
    if (focus?.startsWith('MessageHeader/')) {
      // A replay Task: the message it replays.
      await this.traceReference(report, 'MessageHeader', focus.slice('MessageHeader/'.length), undefined);
      return true;
    }
    return false;
  }

  /**
   * A resource on its own: its versions (newest, or the one asked for), the message that wrote
   * each, what each change fired; then the messages that wrote them.
   */
  private async traceResource(report: Mutable<TraceReport>, reference: string, requestedVersion: string | undefined): Promise<void> {
    const history = await this.history(reference);
    if (typeof history === 'string') {
      report.resource = { reference, requestedVersion, versions: [], versionsNotShown: 0, metriportImport: false, problem: history };
      this.notes.push(`${reference}: ${history}`);
      return;
    }
    const newestFirst = [...history.versions].sort((a, b) => b.time - a.time);
    let shown = newestFirst.slice(0, MAX_VERSIONS_SHOWN);
    if (requestedVersion) {
      shown = newestFirst.filter((v) => v.versionId === requestedVersion);
      if (shown.length === 0) {
        report.resource = { reference, requestedVersion, versions: [], versionsNotShown: 0, metriportImport: false, problem: `no version ${requestedVersion} among its ${history.versions.length} newest versions` };
        this.notes.push(`${reference}/_history/${requestedVersion}: not found`);
        return;
      }
    }
    // The messages that named the resource, newest first; those that wrote it give the versions their author.
    const entries = await this.collect<MessageHeader>('MessageHeader', new URLSearchParams({ focus: reference, _sort: '-_lastUpdated' }), MAX_RECEPTIONS * 5);
    const stamps = ingestionStamps(entries.items);
    const oldestShown = Math.min(...shown.map((v) => v.time));
    const runs = await this.runs(reference, oldestShown);
    const deliveries = await this.deliveries(reference, shown.map((v) => v.versionId));
    const versions = shown.map((v) => this.versionTrace(v, history.versions, runs, deliveries, writerOf(v, stamps, this.windowMs)?.ledger));
    const current = history.latest;
    report.resource = {
      reference,
      requestedVersion,
      current: history.current,
      versions,
      versionsNotShown: history.versions.length - shown.length,
      metriportImport: Boolean(current?.meta?.tag?.some((t) => t.system === METRIPORT_SOURCE_TAG.system && t.code === METRIPORT_SOURCE_TAG.code)),
      ...(history.deleted ? { problem: 'deleted' } : {}),
    };
    if (history.truncated) {
      this.notes.push(`${reference}: only its ${history.versions.length} newest versions were read`);
    }

    // Backwards: the messages that wrote the versions shown (not walked forward again).
    const writers = new Set(versions.map((v) => v.writtenBy).filter(Boolean));
    const byKey = new Map<string, WithId<MessageHeader>[]>();
    for (const entry of entries.items) {
      if (writers.has(`MessageHeader/${entry.id}`)) {
        const key = messageIdentityOf(entry).key;
        byKey.set(key, [...(byKey.get(key) ?? []), entry]);
      }
    }
    for (const [key, written] of byKey) {
      const message = key ? await this.messageByKey(key, false) : undefined;
      report.messages.push(message ?? { ...messageIdentityOf(written[0]), receptions: await Promise.all(written.map((e) => this.receptionTrace(e, false))) });
    }
    const others = entries.items.filter((e) => !writers.has(`MessageHeader/${e.id}`)).length;
    if (others > 0) {
      this.notes.push(`${reference}: ${others}${entries.more ? '+' : ''} other HL7 message(s) named it without writing the versions shown`);
    }
    if (report.resource.metriportImport) {
      const patient = patientOf(reference, current);
      if (patient) {
        const tasks = await this.medplum.searchResources('Task', {
          code: `${METRIPORT_WEBHOOK_TASK_CODE.system}|${METRIPORT_WEBHOOK_TASK_CODE.code}`,
          subject: patient,
          _sort: '-_lastUpdated',
          _count: '5',
        });
        report.metriport.push(...tasks.map(metriportOf));
        this.notes.push(`${reference} was imported from Metriport: the Metriport messages merged into ${patient} are listed (a Metriport Task records counts, not the resources it wrote)`);
      }
    }
  }

  // --- HL7 messages -------------------------------------------------------------------------

  /** Every ledger entry of one message, oldest first; `walk` follows what each reception wrote. */
  private async messageByKey(key: string, walk: boolean): Promise<MessageTrace | undefined> {
    const params = new URLSearchParams({ _tag: tokens([{ system: MESSAGE_KEY_SYSTEM, value: key }]), _sort: '_lastUpdated' });
    const entries = await this.collect<MessageHeader>('MessageHeader', params, MAX_RECEPTIONS);
    if (entries.items.length === 0) {
      return undefined;
    }
    if (entries.more) {
      this.notes.push(`${key}: only the first ${MAX_RECEPTIONS} ledger entries of this message are shown`);
    }
    const receptions: ReceptionTrace[] = [];
    for (const entry of entries.items) {
      receptions.push(await this.receptionTrace(entry, walk));
    }
    return { ...messageIdentityOf(entries.items[0]), key, receptions };
  }

  private async receptionTrace(entry: WithId<MessageHeader>, walk: boolean): Promise<ReceptionTrace> {
    const reception = receptionOf(entry);
    const files = await this.filesContaining(entry);
    if (!walk || !wroteResources(reception)) {
      return { ...reception, files };
    }
    const stamp: IngestionStamp = { ledger: reception.ledger, time: Date.parse(reception.recorded) };
    const focus = reception.focus.slice(0, MAX_RESOURCES);
    const written = await Promise.all(focus.map((reference) => this.writtenTrace(reference, stamp)));
    return { ...reception, files, written, ...(reception.focus.length > focus.length ? { notWalked: reception.focus.length - focus.length } : {}) };
  }

  /** What one reception did to one resource: the versions it wrote and what they fired. */
  private async writtenTrace(reference: string, ingestion: IngestionStamp): Promise<WrittenTrace> {
    const history = await this.history(reference);
    if (typeof history === 'string') {
      return history.startsWith('cannot be read') ? this.writtenTraceWithoutHistory(reference, ingestion, history) : { reference, versions: [], problem: history };
    }
    // The other messages that wrote this resource around the same time compete for its versions.
    const params = new URLSearchParams({ focus: reference });
    params.append('_lastUpdated', `ge${new Date(ingestion.time - 2 * this.windowMs).toISOString()}`);
    params.append('_lastUpdated', `le${new Date(ingestion.time + 2 * this.windowMs).toISOString()}`);
    const near = await this.collect<MessageHeader>('MessageHeader', params, 50);
    const stamps = ingestionStamps(near.items);
    const mine = history.versions.filter((v) => writerOf(v, [ingestion, ...stamps], this.windowMs)?.ledger === ingestion.ledger);
    if (mine.length === 0) {
      return { reference, versions: [], current: history.current, ...(history.deleted ? { problem: 'deleted since' } : {}) };
    }
    const runs = await this.runs(reference, Math.min(...mine.map((v) => v.time)));
    const deliveries = await this.deliveries(reference, mine.map((v) => v.versionId));
    return {
      reference,
      versions: mine.sort((a, b) => a.time - b.time).map((v) => this.versionTrace(v, history.versions, runs, deliveries, ingestion.ledger)),
      current: history.current,
      ...(history.deleted ? { problem: 'deleted since' } : {}),
    };
  }

  /**
   * For a caller that may not read the resource (ops reads no clinical data): the runs its changes
   * fired are AuditEvents, which it may read, and the deliveries those runs queued are Tasks named
   * in their output (`queued Task/<id>`), whose focus gives the version delivered. Runs are those
   * recorded from the message on, so a later message's changes can appear too; the problem text
   * says so.
   */
  private async writtenTraceWithoutHistory(reference: string, ingestion: IngestionStamp, problem: string): Promise<WrittenTrace> {
    const runs = await this.runs(reference, ingestion.time);
    const named = [...new Set(runs.flatMap((r) => [...(r.detail ?? '').matchAll(/\bTask\/([0-9a-f-]{36})\b/g)].map((m) => m[1])))];
    const deliveries: DeliveryTrace[] = [];
    for (const id of named.slice(0, MAX_RUNS)) {
      const task = await this.readOrProblem<Task>('Task', id);
      if (typeof task !== 'string' && task.focus?.reference?.startsWith(reference + '/_history/')) {
        deliveries.push(deliveryOf(task));
      }
    }
    const versionIds = [...new Set(deliveries.map((d) => d.focus?.slice(reference.length + '/_history/'.length) ?? ''))].filter(Boolean);
    if (runs.length === 0 && versionIds.length === 0) {
      return { reference, versions: [], problem };
    }
    const versions: VersionTrace[] =
      versionIds.length > 0
        ? versionIds.map((versionId) => ({
            versionId,
            lastUpdated: '',
            runs: runs.filter((r) => deliveries.some((d) => d.focus?.endsWith('/_history/' + versionId) && r.detail?.includes(d.task))),
            deliveries: deliveries.filter((d) => d.focus?.endsWith('/_history/' + versionId)),
          }))
        : [{ versionId: 'unknown', lastUpdated: '', runs, deliveries: [] }];
    return { reference, versions, problem: `${problem}: runs since the message and the deliveries they queued are shown` };
  }

  private versionTrace(
    version: VersionStamp & { readonly lastUpdated: string },
    all: readonly VersionStamp[],
    runs: readonly RunTrace[],
    deliveries: readonly DeliveryTrace[],
    writtenBy: string | undefined
  ): VersionTrace {
    return {
      versionId: version.versionId,
      lastUpdated: version.lastUpdated,
      ...(writtenBy ? { writtenBy } : {}),
      runs: runs.filter((r) => versionOfRun(r, all, deliveries, RUN_SLACK_MS) === version.versionId),
      deliveries: deliveries.filter((d) => d.focus?.endsWith(`/_history/${version.versionId}`)),
    };
  }

  /** Distinct message keys whose MSH-10 is `controlId`, among the newest ledger entries. */
  private async keysEndingWith(controlId: string): Promise<string[]> {
    const keys = new Set<string>();
    const suffix = `^${controlId}`;
    const more = await this.scan<MessageHeader>('MessageHeader', new URLSearchParams({ _sort: '-_lastUpdated' }), this.ledgerScanLimit, (entry) => {
      const key = messageIdentityOf(entry).key;
      if (key.endsWith(suffix) && key.split('^').length === 3) {
        keys.add(key);
      }
      return keys.size <= MAX_MESSAGES;
    });
    if (more && keys.size === 0) {
      this.notes.push(`only the newest ${this.ledgerScanLimit} HL7 ledger entries were searched for this MSH-10`);
    }
    return [...keys];
  }

  // --- what a change fired ------------------------------------------------------------------

  /** AuditEvents about a resource recorded since `fromTime`, oldest first. */
  private async runs(reference: string, fromTime: number): Promise<RunTrace[]> {
    const params = new URLSearchParams({ entity: reference, date: `ge${new Date(fromTime - 1000).toISOString()}`, _sort: 'date' });
    const events = await this.collect<AuditEvent>('AuditEvent', params, MAX_RUNS);
    if (events.more) {
      this.notes.push(`${reference}: only the first ${MAX_RUNS} AuditEvents were read`);
    }
    return events.items.map(runOf).sort((a, b) => a.started.localeCompare(b.started));
  }

  /** Delivery Tasks (partner webhooks, lab orders) whose focus is one of the versions. */
  private async deliveries(reference: string, versionIds: readonly string[]): Promise<DeliveryTrace[]> {
    const result: DeliveryTrace[] = [];
    for (let i = 0; i < versionIds.length; i += 20) {
      const focus = versionIds
        .slice(i, i + 20)
        .map((v) => `${reference}/_history/${v}`)
        .join(',');
      const tasks = await this.collect<Task>('Task', new URLSearchParams({ focus, _sort: 'authored-on' }), 100);
      result.push(...tasks.items.map(deliveryOf));
    }
    return result;
  }

  private history(reference: string): Promise<History | string> {
    let history = this.histories.get(reference);
    if (!history) {
      history = this.readHistory(reference);
      this.histories.set(reference, history);
    }
    return history;
  }

  private async readHistory(reference: string): Promise<History | string> {
    const [resourceType, id] = reference.split('/');
    let bundle: Bundle;
    try {
      bundle = await this.medplum.readHistory(resourceType as Resource['resourceType'], id, { count: 100 });
    } catch (err) {
      return readProblem(err);
    }
    const versions: (VersionStamp & { lastUpdated: string })[] = [];
    // History is newest first; a delete leaves a newest entry without a resource.
    const latest = bundle.entry?.[0]?.resource;
    const deleted = Boolean(bundle.entry?.length && !latest);
    let current: string | undefined;
    const seen = new Set<string>();
    for (;;) {
      for (const entry of bundle.entry ?? []) {
        const meta = entry.resource?.meta;
        if (meta?.versionId && meta.lastUpdated) {
          current ??= meta.versionId;
          versions.push({ versionId: meta.versionId, lastUpdated: meta.lastUpdated, time: Date.parse(meta.lastUpdated) });
        }
      }
      const next = bundle.link?.find((l) => l.relation === 'next')?.url;
      if (!next || !bundle.entry?.length || versions.length >= MAX_HISTORY || seen.has(next)) {
        return { versions, current, latest, deleted, truncated: Boolean(next && bundle.entry?.length) };
      }
      seen.add(next);
      bundle = await this.medplum.get(next);
    }
  }

  // --- SFTP files ---------------------------------------------------------------------------

  /**
   * The SFTP files a ledger entry's message came in: files being processed when the entry was
   * written (claimed before, finished after), whose content holds a message with the same key
   * and content hash.
   */
  private async filesContaining(entry: WithId<MessageHeader>): Promise<FileRef[]> {
    const key = messageIdentityOf(entry).key;
    const hash = messageHashOf(entry);
    const time = Date.parse(entry.meta?.lastUpdated ?? '');
    if (!key || !hash || Number.isNaN(time)) {
      return [];
    }
    const params = new URLSearchParams({ code: `${SFTP_FILE_TASK_CODE.system}|${SFTP_FILE_TASK_CODE.code}` });
    params.append('authored-on', `le${new Date(time + 1000).toISOString()}`);
    params.append('modified', `ge${new Date(time - 1000).toISOString()}`);
    const candidates = await this.collect<Task>('Task', params, MAX_CANDIDATE_FILES);
    const files: FileRef[] = [];
    for (const task of candidates.items) {
      const messages = await this.messagesOfFile(task);
      if (typeof messages !== 'string' && messages.some((m) => m.key === key && m.hash === hash)) {
        files.push({ task: `Task/${task.id}`, source: inputOf(task, 'source') });
      }
    }
    return files;
  }

  private async filesNamed(name: string): Promise<WithId<Task>[]> {
    const found: WithId<Task>[] = [];
    const params = new URLSearchParams({ code: `${SFTP_FILE_TASK_CODE.system}|${SFTP_FILE_TASK_CODE.code}`, _sort: '-_lastUpdated' });
    await this.scan<Task>('Task', params, this.fileScanLimit, (task) => {
      if (inputOf(task, 'file name') === name) {
        found.push(task);
      }
      return found.length < MAX_MESSAGES;
    });
    return found;
  }

  private async fileTrace(task: WithId<Task>): Promise<FileTrace> {
    const messages = await this.messagesOfFile(task);
    const base = {
      task: `Task/${task.id}`,
      source: inputOf(task, 'source'),
      received: task.authoredOn,
      status: task.status,
      outcome: task.businessStatus?.coding?.find((c) => c.system === FILE_OUTCOME_SYSTEM)?.code,
      ...(task.businessStatus?.text ? { summary: hideValues(task.businessStatus.text) } : {}),
    };
    if (typeof messages === 'string') {
      this.notes.push(`Task/${task.id}: ${messages}`);
      return { ...base, format: 'unknown', messages: [] };
    }
    if (messages.length === 0) {
      this.notes.push(`Task/${task.id}: not an HL7 batch file; roster rows are not linked to the resources they wrote (see its counts)`);
      return { ...base, format: 'other', messages: [] };
    }
    const walk = messages.length <= WALKED_FILE_MESSAGES;
    const traced: MessageTrace[] = [];
    for (const message of messages.slice(0, MAX_FILE_MESSAGES)) {
      const params = new URLSearchParams();
      params.append('_tag', tokens([{ system: MESSAGE_KEY_SYSTEM, value: message.key }]));
      params.append('_tag', `${MESSAGE_HASH_SYSTEM}|${message.hash}`);
      params.append('_sort', '_lastUpdated');
      const entries = await this.collect<MessageHeader>('MessageHeader', params, MAX_RECEPTIONS);
      const receptions = await Promise.all(entries.items.map((e) => this.receptionTrace(e, walk)));
      const sender = entries.items[0] ? messageIdentityOf(entries.items[0]).sender : '';
      traced.push({ key: message.key, sender, controlId: message.controlId, type: message.type, receptions });
    }
    if (messages.length > MAX_FILE_MESSAGES) {
      this.notes.push(`Task/${task.id}: the file holds ${messages.length} messages; the first ${MAX_FILE_MESSAGES} are listed`);
    }
    if (!walk) {
      this.notes.push(`Task/${task.id}: the file holds more than ${WALKED_FILE_MESSAGES} messages; trace one by its key for what it wrote`);
    }
    return { ...base, format: 'hl7v2-batch', messageCount: messages.length, messages: traced };
  }

  /** The messages of a file, read from its raw copy: the key and content hash each was recorded under. */
  private messagesOfFile(task: WithId<Task>): Promise<FileMessage[] | string> {
    let messages = this.fileMessages.get(task.id);
    if (!messages) {
      messages = this.readFileMessages(task);
      this.fileMessages.set(task.id, messages);
    }
    return messages;
  }

  private async readFileMessages(task: WithId<Task>): Promise<FileMessage[] | string> {
    const url = task.input?.find((i) => i.type?.text === 'raw file')?.valueAttachment?.url;
    // Stored as `Binary/<id>`; read back, the server presents it as a presigned URL of its own
    // storage. Nothing else is fetched: the client's token must not go to another host.
    const location = url?.startsWith('Binary/')
      ? this.medplum.fhirUrl('Binary', url.slice('Binary/'.length)).toString()
      : url?.startsWith(this.medplum.getBaseUrl())
        ? url
        : undefined;
    if (!location) {
      return 'the file Task keeps no raw copy of the file on this server';
    }
    let text: string;
    try {
      const blob = await this.medplum.download(location);
      text = new TextDecoder('utf-8').decode(await blob.arrayBuffer());
    } catch (err) {
      return `its raw copy cannot be read (${clip(hideValues(normalizeErrorString(err)), 120)})`;
    }
    return fileMessagesOf(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  }

  // --- reading ------------------------------------------------------------------------------

  private async readOrProblem<T extends Resource>(resourceType: T['resourceType'], id: string): Promise<WithId<T> | string> {
    try {
      return (await this.medplum.readResource(resourceType, id)) as unknown as WithId<T>;
    } catch (err) {
      return readProblem(err);
    }
  }

  /** Up to `max` matches, following `next` links; `more` when there were more. */
  private async collect<T extends Resource>(resourceType: T['resourceType'], params: URLSearchParams, max: number): Promise<{ items: WithId<T>[]; more: boolean }> {
    const items: WithId<T>[] = [];
    const more = await this.scan<T>(resourceType, params, max + 1, (item) => {
      items.push(item);
      return true;
    });
    return { items: items.slice(0, max), more: items.length > max || more };
  }

  /**
   * Pages through a search (the server's `next` links: offsets on the local runtime, cursors on
   * a stock server), calling `visit` per match until it returns false or `max` were read.
   * @returns True when it stopped at `max`: there may be more.
   */
  private async scan<T extends Resource>(
    resourceType: T['resourceType'],
    params: URLSearchParams,
    max: number,
    visit: (item: WithId<T>) => boolean
  ): Promise<boolean> {
    const query = new URLSearchParams(params);
    query.set('_count', String(Math.min(max, PAGE_SIZE)));
    let url: string | undefined = `${this.medplum.fhirUrl(resourceType).toString()}?${query.toString()}`;
    const seen = new Set<string>();
    let read = 0;
    while (url && !seen.has(url)) {
      seen.add(url);
      const bundle: Bundle<WithId<T>> = await this.medplum.get(url);
      for (const entry of bundle.entry ?? []) {
        if (entry.resource?.resourceType !== resourceType) {
          continue;
        }
        read++;
        if (!visit(entry.resource) || read >= max) {
          return read >= max;
        }
      }
      url = bundle.entry?.length ? bundle.link?.find((l) => l.relation === 'next')?.url : undefined;
    }
    return false;
  }
}

/** A message of an SFTP file: what the ledger recorded it under. */
export interface FileMessage {
  readonly key: string;
  readonly hash: string;
  readonly controlId: string;
  readonly type: string;
}

/**
 * The messages of an HL7 batch file as the inbound pipeline records them: the message key and
 * the SHA-256 of the parsed message text (pure).
 * @param text - The file content.
 * @returns Its messages; none when the file holds no HL7 messages (a roster).
 */
export function fileMessagesOf(text: string): FileMessage[] {
  const messages: FileMessage[] = [];
  for (const message of readBatchFile(text).messages) {
    try {
      const parsed = readHl7Message(message.text);
      const header = readMessageHeader(parsed);
      messages.push({
        key: messageKey(header),
        hash: messageHash(parsed.toString()),
        controlId: header.controlId,
        type: [header.messageCode, header.triggerEvent].filter(Boolean).join('^'),
      });
    } catch {
      // An unreadable message is recorded under a stand-in key: it cannot be matched, only counted.
    }
  }
  return messages;
}

/**
 * @param task - A Metriport webhook Task.
 * @returns The message it records: ids, outcome and counts (no patient data).
 */
export function metriportOf(task: WithId<Task>): MetriportTrace {
  const counts: Record<string, number> = {};
  for (const output of task.output ?? []) {
    if (output.type?.text && output.valueInteger !== undefined) {
      counts[output.type.text] = output.valueInteger;
    }
  }
  return {
    task: `Task/${task.id}`,
    messageId: task.identifier?.find((i) => i.system === METRIPORT_MESSAGE_ID_SYSTEM)?.value,
    type: inputOf(task, 'message type'),
    received: task.authoredOn,
    status: task.status,
    outcome: task.businessStatus?.coding?.find((c) => c.system === TASK_OUTCOME_SYSTEM)?.code,
    patient: task.for?.reference,
    counts,
  };
}

/**
 * @param err - Why a read failed.
 * @returns `not found`, or `cannot be read (<error>)` with quoted values hidden.
 */
function readProblem(err: unknown): string {
  return isNotFound(normalizeOperationOutcome(err)) ? 'not found' : `cannot be read (${clip(hideValues(normalizeErrorString(err)), 120)})`;
}

/** Ledger entries that wrote resources, as time stamps. */
function ingestionStamps(entries: readonly WithId<MessageHeader>[]): IngestionStamp[] {
  return entries
    .map(receptionOf)
    .filter(wroteResources)
    .map((r) => ({ ledger: r.ledger, time: Date.parse(r.recorded) }));
}

/** The Patient a resource belongs to: itself, or its `subject`/`patient` reference. */
function patientOf(reference: string, resource: Resource | undefined): string | undefined {
  if (reference.startsWith('Patient/')) {
    return reference;
  }
  const r = resource as { subject?: Reference; patient?: Reference } | undefined;
  const candidate = r?.subject?.reference ?? r?.patient?.reference;
  return candidate?.startsWith('Patient/') ? candidate : undefined;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
