import type { AuditEvent, AuditEventEntity, Resource } from '@medplum/fhirtypes';
import type { HubRepository } from './repo.ts';

/**
 * @param resource - A resource an AuditEvent is about.
 * @returns Its entity role, as the stock server sets it (table object-role: 1 Patient, 9
 * Subscriber, 4 Domain resource).
 */
export function entityRole(resource: Resource): NonNullable<AuditEventEntity['role']> {
  switch (resource.resourceType) {
    case 'Patient':
      return { code: '1', display: 'Patient' };
    case 'Subscription':
      return { code: '9', display: 'Subscriber' };
    default:
      return { code: '4', display: 'Domain' };
  }
}

/**
 * Writes an AuditEvent of a bot run or a subscription delivery, with the request's trace id in
 * the stock tracing extension. Trace ids are UUIDs or W3C traceparents (src/local/context.ts),
 * both valid FHIR ids.
 * @param repo - The system repository.
 * @param auditEvent - The event.
 * @param traceId - The request's trace id, if any.
 */
export async function recordAuditEvent(repo: HubRepository, auditEvent: AuditEvent, traceId: string | undefined): Promise<void> {
  const traced: AuditEvent = traceId
    ? { ...auditEvent, extension: [{ url: 'https://medplum.com/fhir/StructureDefinition/tracing', extension: [{ url: 'traceId', valueId: traceId }] }] }
    : auditEvent;
  await repo.createResource(traced);
}
