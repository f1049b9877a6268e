import type { Target, TargetOptions } from '../deploy/target.ts';
import { connectTarget } from '../deploy/target.ts';
import type { TraceOptions } from '../ops/trace.ts';
import { traceChain } from '../ops/trace.ts';
import { formatTrace } from '../ops/trace-format.ts';

export const TRACE_USAGE = `Usage: hub trace <subject> [--json]

  subject: a message key APP^FAC^CTRL (MSH-3^MSH-4^MSH-10), a bare MSH-10, MessageHeader/<id>,
           a Metriport messageId or its Task/<id>, an SFTP file name or its Task/<id>, a delivery
           Task/<id>, or any resource Type/<id>[/_history/<vid>]
  --json   print the trace as JSON instead of a tree

Shows the chain: the ingestion (sender, MSH-10, type, time, outcome, ACK, duplicates, replays),
the resources it wrote and their versions, the runs each change fired (AuditEvents, trace ids)
and the deliveries queued for it (partner webhooks, lab orders: status, attempts, the answer,
dead-letter state). From a resource, the messages that wrote it. No patient data is printed:
ids, senders, control ids, types, statuses and error texts with quoted values hidden.
Exit code 1 when nothing is found.
`;

/** Options of {@link runTraceCommand}. */
export interface TraceCommandOptions {
  readonly log: (line: string) => void;
  readonly error: (line: string) => void;
  /** Bounds of the trace (tests narrow them). */
  readonly trace?: TraceOptions;
}

/**
 * `hub trace <subject> [--json]` on the target (the environment deploy uses).
 * @param target - A connected target, the options to connect with, or why there is none.
 * @param args - Arguments after `trace`.
 * @param options - Output.
 * @returns The exit code: 0 when the subject was found, 1 when not, 2 for a usage error.
 */
export async function runTraceCommand(target: Target | TargetOptions | string, args: readonly string[], options: TraceCommandOptions): Promise<number> {
  const json = args.includes('--json');
  const unknown = args.filter((a) => a.startsWith('--') && a !== '--json');
  const subjects = args.filter((a) => !a.startsWith('--'));
  if (unknown.length || subjects.length !== 1 || !subjects[0].trim()) {
    options.error(unknown.length ? `Unknown option for trace: ${unknown.join(', ')}` : 'Give one subject to trace');
    options.error(TRACE_USAGE);
    return 2;
  }
  if (typeof target === 'string') {
    options.error(target);
    return 2;
  }
  const { client } = 'client' in target ? target : await connectTarget(target);
  const report = await traceChain(client, subjects[0], options.trace);
  if (json) {
    options.log(JSON.stringify(report, undefined, 2));
  } else {
    formatTrace(report).forEach((line) => (report.found ? options.log(line) : options.error(line)));
  }
  return report.found ? 0 : 1;
}
