import type { BotEvent, MedplumClient, WithId } from '@medplum/core';
import { normalizeErrorString } from '@medplum/core';
import type { MessageHeader, Task } from '@medplum/fhirtypes';
import { LedgerExtension, markResolved, outcomeOf, readRawMessage } from '../../src/fhir/ledger.ts';
import { isVersionConflict } from '../../src/fhir/writer.ts';
import { REPLAY_TASK_CODE } from '../../src/inbound/replay.ts';
import { processInboundMessage } from '../../src/inbound/pipeline.ts';

/**
 * Replays a dead-lettered (or rejected) HL7 message: triggered by a Task with code `replay-hl7`
 * whose focus is the ledger entry (created by `npm run hub -- hl7 replay` or by anyone allowed to
 * create Tasks). The raw message goes through the same pipeline as on arrival; when it commits,
 * the dead letter is marked `resolved`. Replaying again changes nothing: the message is then a
 * duplicate of its committed replay.
 * @param medplum - Client with the bot's identity.
 * @param event - The Task.
 * @returns The Task's final status (`ignored` for a Task that is not a replay request).
 */
export async function handler(medplum: MedplumClient, event: BotEvent<Task>): Promise<{ status: string }> {
  const task = event.input;
  if (!task.id || task.status !== 'requested' || !task.code?.coding?.some((c) => c.system === REPLAY_TASK_CODE.system && c.code === REPLAY_TASK_CODE.code)) {
    return { status: 'ignored' };
  }
  const finish = async (status: Task['status'], text: string, ledger?: string): Promise<{ status: string }> => {
    const current = await medplum.readResource('Task', task.id as string);
    await medplum.updateResource<Task>({
      ...current,
      status,
      businessStatus: { text },
      ...(ledger ? { output: [{ type: { text: 'ledger entry' }, valueReference: { reference: ledger } }] } : {}),
    });
    console.log(`replay Task/${task.id}: ${status}: ${text}`);
    return { status };
  };
  try {
    await medplum.updateResource<Task>({ ...(await medplum.readResource('Task', task.id)), status: 'in-progress' });
    const focus = task.focus?.reference;
    if (!focus?.startsWith('MessageHeader/')) {
      return await finish('failed', 'Task.focus must be a MessageHeader (a ledger entry)');
    }
    const entry = (await medplum.readReference({ reference: focus })) as WithId<MessageHeader>;
    const outcome = outcomeOf(entry);
    if (outcome !== 'dead-letter' && outcome !== 'rejected') {
      return await finish('completed', `nothing to replay: the message is ${outcome ?? 'not a ledger entry'}`);
    }
    const raw = await readRawMessage(medplum, entry);
    const rawMessage = entry.extension?.find((e) => e.url === LedgerExtension.rawMessage)?.valueAttachment;
    const result = await processInboundMessage(medplum, raw, { replayOf: { reference: focus }, rawMessage, log: (line) => console.log(line) });
    if (result.outcome === 'committed' && result.ledger) {
      await resolve(medplum, entry, result.ledger);
      return await finish('completed', result.duplicate ? 'already committed' : 'committed', result.ledger);
    }
    return await finish('failed', `replay answered ${result.ackCode} (${result.outcome})`, result.ledger);
  } catch (err) {
    return finish('failed', normalizeErrorString(err)).catch(() => ({ status: 'failed' }));
  }
}

/**
 * Marks the replayed entry resolved. Two replays of the same entry may race: the one that finds
 * the entry already resolved by the other is done too.
 */
async function resolve(medplum: MedplumClient, entry: WithId<MessageHeader>, ledger: string): Promise<void> {
  try {
    await markResolved(medplum, entry, { reference: ledger });
  } catch (err) {
    const current = isVersionConflict(err) ? await medplum.readResource('MessageHeader', entry.id) : undefined;
    if (!current || outcomeOf(current) !== 'resolved') {
      throw err;
    }
  }
}
