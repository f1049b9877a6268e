// Pure pieces of `hub trace`: what a subject names, and how the records of the chain (ledger
// entries, AuditEvents, queued Tasks) read as trace nodes, with nothing that could be patient
// data (ids, codes, counts, statuses and error texts with their quoted values hidden).

import type { WithId } from '@medplum/core';
import { isResourceType } from '@medplum/core';
import type { AuditEvent, MessageHeader, Task } from '@medplum/fhirtypes';
import { clip, hideValues } from '../fhir/strings.ts';
import type { MessageOutcome } from '../fhir/ledger.ts';
import { LedgerExtension, MESSAGE_HASH_SYSTEM, MESSAGE_KEY_SYSTEM, outcomeOf } from '../fhir/ledger.ts';
import { controlIdOf, isReplay, senderLabel } from '../inbound/stats.ts';
import { DELIVERY_STATE_SYSTEM, QueueExtension } from '../outbound/queue.ts';

/** What a trace subject names. */
export type TraceSubject =
  /** `<MSH-3>^<MSH-4>^<MSH-10>`: one HL7 message of one sender. */
  | { readonly kind: 'message-key'; readonly key: string }
  /** `Type/id` or `Type/id/_history/vid`. */
  | { readonly kind: 'reference'; readonly resourceType: string; readonly id: string; readonly versionId?: string }
  /** Anything else: a bare MSH-10, a Metriport messageId or an SFTP file name. */
  | { readonly kind: 'text'; readonly value: string };

const FHIR_ID = '[A-Za-z0-9\\-.]{1,64}';
const REFERENCE = new RegExp(`^([A-Z][A-Za-z]{1,63})/(${FHIR_ID})(?:/_history/(${FHIR_ID}))?$`);

/**
 * @param subject - What the operator typed.
 * @returns What it names, or undefined when it is empty.
 */
export function parseSubject(subject: string): TraceSubject | undefined {
  const value = subject.trim();
  if (!value) {
    return undefined;
  }
  const reference = REFERENCE.exec(value);
  if (reference) {
    return { kind: 'reference', resourceType: reference[1], id: reference[2], ...(reference[3] ? { versionId: reference[3] } : {}) };
  }
  // MSH-3 and MSH-4 may be empty in a key; MSH-10 may not (the ledger rejects such messages).
  const parts = value.split('^');
  if (parts.length === 3 && parts[2]) {
    return { kind: 'message-key', key: value };
  }
  return { kind: 'text', value };
}

/** One ledger entry: a reception of a message, or a replay of one. */
export interface Reception {
  /** `MessageHeader/<id>`. */
  readonly ledger: string;
  /** When the entry was written (`meta.lastUpdated`; for a `resolved` entry, when it was resolved). */
  readonly recorded: string;
  readonly outcome: MessageOutcome | 'unknown';
  /** The ACK the sender got: AA, AE or AR. */
  readonly ackCode?: string;
  /** Written by a replay of a dead letter, not received from the sender. */
  readonly replay: boolean;
  readonly replayOf?: string;
  /** The same message was committed before: nothing was written. */
  readonly duplicateOf?: string;
  /** A dead letter committed later by this replay or reception. */
  readonly resolvedBy?: string;
  /** The error (field, code, text), quoted values hidden. */
  readonly error?: string;
  readonly warnings: number;
  /** `Type/id` of what the message wrote or referenced. */
  readonly focus: readonly string[];
}

/**
 * @param entry - A ledger entry.
 * @returns The reception it records.
 */
export function receptionOf(entry: WithId<MessageHeader>): Reception {
  const ext = (url: string): NonNullable<MessageHeader['extension']>[number] | undefined => entry.extension?.find((e) => e.url === url);
  const error = ext(LedgerExtension.error)?.valueString;
  return {
    ledger: `MessageHeader/${entry.id}`,
    recorded: entry.meta?.lastUpdated ?? '',
    outcome: outcomeOf(entry) ?? 'unknown',
    ackCode: ext(LedgerExtension.ackCode)?.valueCode,
    replay: isReplay(entry),
    replayOf: ext(LedgerExtension.replayOf)?.valueReference?.reference,
    duplicateOf: ext(LedgerExtension.duplicateOf)?.valueReference?.reference,
    resolvedBy: ext(LedgerExtension.resolvedBy)?.valueReference?.reference,
    error: error === undefined ? undefined : hideValues(error),
    warnings: entry.extension?.filter((e) => e.url === LedgerExtension.warning).length ?? 0,
    focus: (entry.focus ?? []).map((f) => f.reference).filter((r): r is string => Boolean(r)),
  };
}

/**
 * @param reception - A reception.
 * @returns True when it wrote resources: committed (or resolved) and not a duplicate.
 */
export function wroteResources(reception: Reception): boolean {
  return (reception.outcome === 'committed' || reception.outcome === 'resolved') && !reception.duplicateOf && reception.focus.length > 0;
}

/** The message a ledger entry records: who sent it, what it was. */
export interface MessageIdentity {
  /** `<MSH-3>^<MSH-4>^<MSH-10>`. */
  readonly key: string;
  /** `<facility>/<application>` as the ledger records the sender. */
  readonly sender: string;
  readonly controlId: string;
  /** e.g. `ORU^R01`. */
  readonly type: string;
}

/**
 * @param entry - A ledger entry.
 * @returns The message it records.
 */
export function messageIdentityOf(entry: MessageHeader): MessageIdentity {
  return {
    key: messageKeyOf(entry) ?? '',
    sender: senderLabel(entry.source?.endpoint ?? ''),
    controlId: controlIdOf(entry),
    type: entry.eventCoding?.display ?? entry.eventCoding?.code ?? '',
  };
}

/**
 * @param entry - A ledger entry.
 * @returns Its message key tag.
 */
export function messageKeyOf(entry: MessageHeader): string | undefined {
  return entry.meta?.tag?.find((t) => t.system === MESSAGE_KEY_SYSTEM)?.code;
}

/**
 * @param entry - A ledger entry.
 * @returns Its content hash tag (SHA-256 of the message text).
 */
export function messageHashOf(entry: MessageHeader): string | undefined {
  return entry.meta?.tag?.find((t) => t.system === MESSAGE_HASH_SYSTEM)?.code;
}

/** A run a change fired, as an AuditEvent records it. */
export interface RunTrace {
  /** `AuditEvent/<id>`. */
  readonly auditEvent: string;
  /** When the run started (the triggering request's time), else when it was recorded. */
  readonly started: string;
  /** `bot run` (AuditEvent type execute), `rest-hook` (transmit) or the type code. */
  readonly kind: string;
  /** The Bot or Subscription that observed it. */
  readonly observer?: string;
  /** The Subscription that fired it. */
  readonly subscription?: string;
  readonly outcome: 'success' | 'failure';
  readonly traceId?: string;
  /** First line of what the run logged (quoted values hidden, at most 200 characters). */
  readonly detail?: string;
}

/** The tracing extension the stock server (and the local runtime) put on AuditEvents. */
export const TRACING_EXTENSION = 'https://medplum.com/fhir/StructureDefinition/tracing';

/**
 * @param event - An AuditEvent of a bot run or a subscription delivery.
 * @returns The run it records.
 */
export function runOf(event: WithId<AuditEvent>): RunTrace {
  const code = event.type?.code;
  const tracing = event.extension?.find((e) => e.url === TRACING_EXTENSION)?.extension?.find((e) => e.url === 'traceId');
  const firstLine = event.outcomeDesc
    ?.split(/\r\n|\r|\n/)
    .map((line) => line.trim())
    .find(Boolean);
  const detail = firstLine ? referencesOf(firstLine) : undefined;
  return {
    auditEvent: `AuditEvent/${event.id}`,
    started: event.period?.start ?? event.recorded ?? '',
    kind: code === 'execute' ? 'bot run' : code === 'transmit' ? 'rest-hook' : (code ?? 'event'),
    observer: event.source?.observer?.reference,
    subscription: event.entity?.map((e) => e.what?.reference).find((r) => r?.startsWith('Subscription/')),
    outcome: event.outcome === '0' ? 'success' : 'failure',
    traceId: tracing?.valueId ?? tracing?.valueString,
    ...(detail ? { detail: clip(detail, 200) } : {}),
  };
}

/**
 * What of a run's first logged line may be shown: the bot's `name:` prefix and the references in
 * it (`queued Task/… for Endpoint/…` becomes `partner-webhook: Task/… Endpoint/…`). A bot's
 * output is part of the FHIR record (its AuditEvent) and may quote the data it handled; the
 * trace prints only ids.
 * @param line - The line.
 * @returns The shown part, or undefined when nothing is safe to show.
 */
export function referencesOf(line: string): string | undefined {
  const prefix = /^[a-z][a-z0-9-]*:/.exec(line)?.[0];
  const references = (line.match(/\b[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}\b/g) ?? []).filter((r) => isResourceType(r.slice(0, r.indexOf('/'))));
  const parts = [prefix, ...references].filter((p): p is string => Boolean(p));
  return parts.length ? parts.join(' ') : undefined;
}

/** One queued delivery of a resource version: to a partner (webhook) or a lab (HL7 order). */
export interface DeliveryTrace {
  /** `Task/<id>`. */
  readonly task: string;
  /** The queue: `partner-delivery`, `lab-order`, or another Task code. */
  readonly queue: string;
  /** `Type/id/_history/vid` delivered. */
  readonly focus?: string;
  /** The partner Endpoint or lab Device. */
  readonly destination?: string;
  /** Task status: requested (queued), completed (delivered), failed (dead letter). */
  readonly status: string;
  /** delivered, retrying, dead-letter, replayed; `pending` before the first attempt. */
  readonly state: string;
  readonly attempts: number;
  /** When a queued delivery is tried next. */
  readonly nextAttempt?: string;
  /** The destination's last answer: `HTTP 200`, `ACK AA`. */
  readonly response?: string;
  /** What the queue recorded about the last attempt (quoted values hidden). */
  readonly text?: string;
  readonly lastModified?: string;
}

/**
 * @param task - A queued Task (partner delivery or lab order).
 * @returns The delivery it records.
 */
export function deliveryOf(task: WithId<Task>): DeliveryTrace {
  const text = task.businessStatus?.text;
  const state = task.businessStatus?.coding?.find((c) => c.system === DELIVERY_STATE_SYSTEM)?.code;
  const nextAttempt = task.status === 'requested' ? task.extension?.find((e) => e.url === QueueExtension.nextAttempt)?.valueInstant : undefined;
  const response = text ? responseOf(text) : undefined;
  return {
    task: `Task/${task.id}`,
    queue: task.code?.coding?.[0]?.code ?? 'task',
    focus: task.focus?.reference,
    destination: task.owner?.reference,
    status: task.status,
    state: state ?? (task.status === 'failed' ? 'dead-letter' : task.status === 'requested' ? 'pending' : task.status),
    attempts: task.extension?.find((e) => e.url === QueueExtension.attempts)?.valueInteger ?? 0,
    ...(nextAttempt ? { nextAttempt } : {}),
    ...(response ? { response } : {}),
    ...(text ? { text: hideValues(text) } : {}),
    ...(task.lastModified ? { lastModified: task.lastModified } : {}),
  };
}

/**
 * Reads the destination's answer from what the queue recorded about the last attempt: the
 * partner's HTTP status (`delivered (HTTP 200)`, `attempt 2 failed: HTTP 500`, `… last: HTTP 503`)
 * or the lab's acknowledgement code (`acknowledged AA by the lab`, `the lab answered AE`).
 * @param text - `Task.businessStatus.text` of a queued Task.
 * @returns `HTTP <status>` or `ACK <code>`, when the text names one.
 */
export function responseOf(text: string): string | undefined {
  const http = /\bHTTP (\d{3})\b/.exec(text);
  if (http) {
    return `HTTP ${http[1]}`;
  }
  const ack = /\b(AA|AE|AR|CA|CE|CR)\b/.exec(text);
  return ack ? `ACK ${ack[1]}` : undefined;
}

/** When a resource version was written. */
export interface VersionStamp {
  readonly versionId: string;
  /** Epoch ms of its `meta.lastUpdated`. */
  readonly time: number;
}

/** When an ingestion was recorded. */
export interface IngestionStamp {
  /** `MessageHeader/<id>`. */
  readonly ledger: string;
  /** Epoch ms of the ledger entry. */
  readonly time: number;
}

/**
 * Which ingestion wrote a resource version. The ledger entry is committed in the same transaction
 * as the resources it names (creates just before it, updates just after), but it names them
 * without versions, so versions are attributed by time: to the ingestion nearest in time among
 * those that named the resource, and only within `windowMs` (ties go to the first listed).
 * @param version - The version.
 * @param ingestions - Ingestions that wrote the resource.
 * @param windowMs - Largest distance between a version and its ingestion.
 * @returns The ingestion, or undefined when none is near enough (another writer changed it).
 */
export function writerOf(version: VersionStamp, ingestions: readonly IngestionStamp[], windowMs: number): IngestionStamp | undefined {
  let writer: IngestionStamp | undefined;
  let best = Number.POSITIVE_INFINITY;
  for (const ingestion of ingestions) {
    const distance = Math.abs(version.time - ingestion.time);
    if (distance <= windowMs && distance < best) {
      writer = ingestion;
      best = distance;
    }
  }
  return writer;
}

/**
 * @param versions - A resource's versions.
 * @param time - Epoch ms of an event about the resource (a subscription run).
 * @returns The version current at that time: the latest written at or before it.
 */
export function versionAt(versions: readonly VersionStamp[], time: number): VersionStamp | undefined {
  let current: VersionStamp | undefined;
  for (const v of versions) {
    if (v.time <= time && (!current || v.time >= current.time)) {
      current = v;
    }
  }
  return current;
}

/**
 * The version a run was fired by. A run that names a delivery it queued (the partner-webhook bot
 * logs the Task) belongs to that delivery's version; any other run to the version current when it
 * started, with `slackMs` of tolerance: clocks differ by a few milliseconds between the write and
 * the run it fires (the local runtime keeps `lastUpdated` strictly increasing, so in a burst of
 * writes it runs slightly ahead of the clock).
 * @param run - The run.
 * @param versions - The resource's versions.
 * @param deliveries - Deliveries of those versions.
 * @param slackMs - Tolerance.
 * @returns The version id, when one fits.
 */
export function versionOfRun(run: RunTrace, versions: readonly VersionStamp[], deliveries: readonly DeliveryTrace[], slackMs: number): string | undefined {
  const named = deliveries.find((d) => d.focus && run.detail?.includes(d.task));
  if (named?.focus) {
    return named.focus.slice(named.focus.indexOf('/_history/') + '/_history/'.length);
  }
  return versionAt(versions, Date.parse(run.started) + slackMs)?.versionId;
}

