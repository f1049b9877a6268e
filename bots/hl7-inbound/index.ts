import type { BotEvent, Hl7Message, MedplumClient, OperationOutcomeError, WithId } from '@medplum/core';
import { normalizeErrorString, preconditionFailed } from '@medplum/core';
import type { Patient } from '@medplum/fhirtypes';
import { mergeIdentifiers, identifierKey } from '../../src/fhir/identifiers.ts';
import { buildAnswer, Hl7ErrorCode } from '../../src/hl7/ack.ts';
import { patientFromPid } from '../../src/mapping/pid-patient.ts';

/** A version conflict (two messages for one patient at once) is retried this many times. */
const MAX_ATTEMPTS = 3;

/**
 * ADT inbound (first flow): upserts the Patient of an ADT message, keyed by PID-3 identifiers
 * with their systems, and answers AA only after the write committed. Data problems get AE with an
 * ERR segment, non-ADT messages AR; the bot never throws, so the sender always gets an answer.
 * @param medplum - Client authenticated as the agent's ClientApplication.
 * @param event - The HL7 message from the agent channel (or `$execute`).
 * @returns The ACK.
 */
export async function handler(medplum: MedplumClient, event: BotEvent<Hl7Message>): Promise<Hl7Message> {
  const message = event.input;
  const messageType = message.getSegment('MSH')?.getComponent(9, 1) ?? '';
  if (messageType !== 'ADT') {
    return buildAnswer(message, 'AR', {
      code: Hl7ErrorCode.UnsupportedMessageType,
      text: `Unsupported message type ${messageType || '(none)'}`,
      location: { segment: 'MSH', field: 9 },
    });
  }
  const pid = message.getSegment('PID');
  if (!pid) {
    return buildAnswer(message, 'AE', {
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'PID segment missing',
      location: { segment: 'PID' },
    });
  }
  const incoming = patientFromPid(pid);
  if (!incoming.identifier?.length) {
    return buildAnswer(message, 'AE', {
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'PID-3 has no identifier with an assigning authority',
      location: { segment: 'PID', field: 3 },
    });
  }
  for (let attempt = 1; ; attempt++) {
    try {
      await upsertPatient(medplum, incoming);
      return buildAnswer(message, 'AA');
    } catch (err) {
      if (isConflict(err) && attempt < MAX_ATTEMPTS) {
        continue;
      }
      console.log(`ADT ${message.getSegment('MSH')?.getField(10)?.toString() ?? ''} not committed: ${normalizeErrorString(err)}`);
      return buildAnswer(message, 'AE', { code: Hl7ErrorCode.ApplicationInternalError, text: 'Patient could not be stored' });
    }
  }
}

async function upsertPatient(medplum: MedplumClient, incoming: Patient): Promise<WithId<Patient>> {
  const tokens = (incoming.identifier ?? []).map(identifierKey);
  const matches = await medplum.searchResources('Patient', { identifier: tokens.join(','), _count: '2' });
  if (matches.length > 1) {
    throw new Error('PID-3 identifiers match more than one Patient');
  }
  const existing = matches[0];
  if (!existing) {
    return medplum.createResourceIfNoneExist(incoming, `identifier=${tokens[0]}`);
  }
  const merged: Patient = {
    ...existing,
    ...incoming,
    identifier: mergeIdentifiers(existing.identifier, incoming.identifier),
  };
  return medplum.updateResource(merged, { headers: { 'If-Match': `W/"${existing.meta?.versionId}"` } });
}

/**
 * Duck-typed: the client that threw is the sandbox's `MedplumClient`, whose `OperationOutcomeError`
 * class is not the one this bundle's `require('@medplum/core')` returns (medplum-facts 1.3).
 * @param err - The error.
 * @returns True for a version conflict (412) or a serialization conflict (409).
 */
function isConflict(err: unknown): boolean {
  const outcome = (err as Partial<OperationOutcomeError> | undefined)?.outcome;
  return outcome?.id === preconditionFailed.id || outcome?.issue?.[0]?.code === 'conflict';
}
