// Pure rendering of a trace report as a tree of text lines (`hub trace`); the report holds no
// patient data, and nothing here adds any.

import type { FileTrace, MessageTrace, MetriportTrace, ReceptionTrace, ResourceTrace, TraceReport, VersionTrace, WrittenTrace } from './trace.ts';
import type { DeliveryTrace, RunTrace } from './trace-records.ts';

/** A node of the printed tree. */
export interface TreeNode {
  readonly label: string;
  readonly children?: readonly TreeNode[];
}

/**
 * @param nodes - Top-level nodes.
 * @returns The tree as lines, children drawn under their parent with `├─`, `└─` and `│`.
 */
export function renderTree(nodes: readonly TreeNode[]): string[] {
  const lines: string[] = [];
  const walk = (node: TreeNode, prefix: string, last: boolean, top: boolean): void => {
    lines.push(top ? node.label : `${prefix}${last ? '└─ ' : '├─ '}${node.label}`);
    const children = node.children ?? [];
    const childPrefix = top ? '' : `${prefix}${last ? '   ' : '│  '}`;
    children.forEach((child, i) => walk(child, childPrefix, i === children.length - 1, false));
  };
  nodes.forEach((node) => walk(node, '', true, true));
  return lines;
}

/**
 * @param report - A trace.
 * @returns What `hub trace` prints: a title, the chain as a tree, then the notes.
 */
export function formatTrace(report: TraceReport): string[] {
  const title = report.found ? `Trace of ${report.subject} (${report.resolvedAs.join(', ')})` : `Not found: ${report.subject}`;
  const notes = report.notes.map((n) => `note: ${n}`);
  return [title, ...renderTree(traceTree(report)), ...notes];
}

/**
 * @param report - A trace.
 * @returns Its tree: the resource traced (if any), then messages, files and Metriport messages.
 */
export function traceTree(report: TraceReport): TreeNode[] {
  const nodes: TreeNode[] = [];
  if (report.resource) {
    nodes.push(resourceNode(report.resource));
  }
  nodes.push(...report.messages.map((m) => messageNode(m, report.resource ? 'written by HL7 message' : 'HL7 message')));
  nodes.push(...report.files.map(fileNode));
  nodes.push(...report.metriport.map(metriportNode));
  return nodes;
}

function resourceNode(resource: ResourceTrace): TreeNode {
  const label = join([
    resource.reference,
    resource.current ? `current ${resource.current}` : undefined,
    resource.metriportImport ? 'imported from Metriport' : undefined,
    resource.problem,
  ]);
  const children: TreeNode[] = resource.versions.map((v) => versionNode(v, true));
  if (resource.versionsNotShown > 0) {
    children.push({ label: `… ${resource.versionsNotShown} other version(s) not shown (trace ${resource.reference}/_history/<vid> for one)` });
  }
  return { label, children };
}

/**
 * @param message - An HL7 message and its receptions.
 * @param heading - What the message is to the subject.
 * @returns Its node.
 */
export function messageNode(message: MessageTrace, heading = 'HL7 message'): TreeNode {
  return {
    label: join([`${heading} ${message.key}`, message.type, message.sender ? `from ${message.sender}` : undefined]),
    children: message.receptions.map(receptionNode),
  };
}

function receptionNode(reception: ReceptionTrace): TreeNode {
  const label = join([
    reception.ledger,
    reception.recorded,
    reception.replay ? 'replay' : 'received',
    reception.outcome,
    reception.ackCode ? `ACK ${reception.ackCode}` : undefined,
    reception.replayOf ? `replay of ${reception.replayOf}` : undefined,
    reception.duplicateOf ? `duplicate of ${reception.duplicateOf} (nothing written)` : undefined,
    reception.resolvedBy ? `resolved by ${reception.resolvedBy}` : undefined,
    reception.warnings ? `${reception.warnings} warning(s)` : undefined,
    reception.error ? `error: ${reception.error}` : undefined,
  ]);
  const children: TreeNode[] = reception.files.map((f) => ({ label: join([`arrived in SFTP file ${f.task}`, f.source ? `source ${f.source}` : undefined]) }));
  if (reception.written) {
    children.push(...reception.written.map(writtenNode));
    if (reception.notWalked) {
      children.push({ label: `… ${reception.notWalked} more resource(s) not followed` });
    }
  } else if (reception.focus.length && !reception.duplicateOf) {
    children.push({ label: `${reception.focus.length} resource(s) (trace ${reception.ledger} for what each change fired)` });
  }
  return { label, children };
}

function writtenNode(written: WrittenTrace): TreeNode {
  if (written.versions.length === 0) {
    return { label: join([written.reference, written.problem ?? `not changed by this message${written.current ? ` (current ${written.current})` : ''}`]) };
  }
  if (written.versions.length === 1) {
    const [version] = written.versions;
    return {
      label: join([written.reference, `wrote ${version.versionId}`, version.lastUpdated, written.problem]),
      children: firedNodes(version),
    };
  }
  return {
    label: join([written.reference, `wrote ${written.versions.length} versions`, written.problem]),
    children: written.versions.map((v) => versionNode(v, false)),
  };
}

function versionNode(version: VersionTrace, withWriter: boolean): TreeNode {
  const writer = withWriter ? (version.writtenBy ? `written by ${version.writtenBy}` : 'not written by an HL7 message') : undefined;
  return { label: join([`version ${version.versionId}`, version.lastUpdated, writer]), children: firedNodes(version) };
}

function firedNodes(version: VersionTrace): TreeNode[] {
  const nodes = [...version.runs.map(runNode), ...version.deliveries.map(deliveryNode)];
  return nodes.length ? nodes : [{ label: 'no subscription run or delivery recorded' }];
}

/**
 * @param run - A run a change fired.
 * @returns Its node.
 */
export function runNode(run: RunTrace): TreeNode {
  return {
    label: join([
      `${run.kind} ${run.auditEvent}`,
      run.started,
      run.observer,
      run.subscription && run.subscription !== run.observer ? `via ${run.subscription}` : undefined,
      run.outcome,
      run.traceId ? `trace ${run.traceId}` : undefined,
      run.detail ? `"${run.detail}"` : undefined,
    ]),
  };
}

/**
 * @param delivery - A queued delivery.
 * @returns Its node.
 */
export function deliveryNode(delivery: DeliveryTrace): TreeNode {
  return {
    label: join([
      `${delivery.queue} ${delivery.task}`,
      delivery.destination ? `→ ${delivery.destination}` : undefined,
      delivery.status,
      delivery.state,
      `${delivery.attempts} attempt(s)`,
      delivery.response,
      delivery.nextAttempt ? `next attempt ${delivery.nextAttempt}` : undefined,
      delivery.text ? `"${delivery.text}"` : undefined,
    ]),
  };
}

function fileNode(file: FileTrace): TreeNode {
  const label = join([
    `SFTP file ${file.task}`,
    file.source ? `source ${file.source}` : undefined,
    file.received ? `received ${file.received}` : undefined,
    file.status,
    file.outcome,
    file.messageCount !== undefined ? `${file.messageCount} message(s)` : undefined,
    file.summary ? `"${file.summary}"` : undefined,
  ]);
  return { label, children: file.messages.map((m) => messageNode(m)) };
}

function metriportNode(message: MetriportTrace): TreeNode {
  const counts = Object.entries(message.counts)
    .map(([name, value]) => `${name} ${value}`)
    .join(', ');
  return {
    label: join([
      `Metriport message ${message.task}`,
      message.messageId ? `messageId ${message.messageId}` : undefined,
      message.type,
      message.received ? `received ${message.received}` : undefined,
      message.status,
      message.outcome,
    ]),
    children: [
      { label: message.patient ? `merged into ${message.patient}` : 'no Patient recorded' },
      ...(counts ? [{ label: counts }] : []),
    ],
  };
}

function join(parts: readonly (string | undefined)[]): string {
  return parts.filter((p): p is string => Boolean(p)).join('  ');
}
