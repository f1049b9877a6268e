import type { MedplumClient, WithId } from '@medplum/core';
import type { AccessPolicy, AccessPolicyResource, Bot, Bundle, Endpoint, Parameters, ProjectSetting, Subscription, Task } from '@medplum/fhirtypes';
import { BOT_NAME_SYSTEM } from '../../src/constants.ts';
import { DELIVERY_TASK_CODE } from '../../src/outbound/delivery.ts';
import { PARTNER_WEBHOOK_CONNECTION, PartnerExtension } from '../../src/outbound/partner.ts';

/** A partner as ops sets one up: its scope policy, its Endpoint and its Subscription. */
export interface TestPartner {
  readonly scope: WithId<AccessPolicy>;
  readonly endpoint: WithId<Endpoint>;
  readonly subscription: WithId<Subscription>;
}

/** What a test partner receives and how it is retried. */
export interface TestPartnerOptions {
  readonly name: string;
  /** The receiver's URL. */
  readonly url: string;
  /** The project secret holding its signing secret. */
  readonly secretName: string;
  /** Hours before a failing delivery is dead-lettered. */
  readonly windowHours: number;
  /** The partner's scope: its AccessPolicy's resource entries. */
  readonly scope: AccessPolicyResource[];
  /** The Subscription criteria that routes changes to it, e.g. `Observation`. */
  readonly criteria: string;
}

/**
 * Sets one project secret (`Project.secret`), keeping the others, through the admin API.
 * @param client - A project admin.
 * @param name - The secret's name.
 * @param value - Its value.
 */
export async function setProjectSecret(client: MedplumClient, name: string, value: string): Promise<void> {
  const projectId = (client.getProject() as { id: string }).id;
  const current = ((await client.get(`admin/projects/${projectId}`)) as { project: { secret?: ProjectSetting[] } }).project.secret ?? [];
  await client.post(`admin/projects/${projectId}/secrets`, [...current.filter((s) => s.name !== name), { name, valueString: value }]);
}

/**
 * Creates a partner that is retried without delay and sent at once (no settle time), so tests
 * drive its deliveries with {@link runPartnerDeliveryPass}.
 * @param client - A project admin.
 * @param options - The partner.
 * @returns Its resources.
 */
export async function createTestPartner(client: MedplumClient, options: TestPartnerOptions): Promise<TestPartner> {
  const scope = await client.createResource<AccessPolicy>({ resourceType: 'AccessPolicy', name: `${options.name} scope`, resource: options.scope });
  const endpoint = await client.createResource<Endpoint>({
    resourceType: 'Endpoint',
    status: 'active',
    name: options.name,
    connectionType: { ...PARTNER_WEBHOOK_CONNECTION },
    payloadType: [{ text: 'FHIR notification Bundle' }],
    address: options.url,
    extension: [
      { url: PartnerExtension.secretNames, valueString: options.secretName },
      { url: PartnerExtension.retryWindowHours, valueDecimal: options.windowHours },
      { url: PartnerExtension.retryBaseSeconds, valueDecimal: 0 },
      { url: PartnerExtension.settleSeconds, valueDecimal: 0 },
      { url: PartnerExtension.accessPolicy, valueReference: { reference: `AccessPolicy/${scope.id}` } },
    ],
  });
  const bot = (await client.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|partner-webhook` })) as WithId<Bot>;
  const subscription = await client.createResource<Subscription>({
    resourceType: 'Subscription',
    status: 'active',
    reason: `${options.name} receives ${options.criteria}`,
    criteria: options.criteria,
    channel: { type: 'rest-hook', endpoint: `Bot/${bot.id}`, payload: 'application/fhir+json' },
    extension: [{ url: PartnerExtension.endpoint, valueReference: { reference: `Endpoint/${endpoint.id}` } }],
  });
  return { scope, endpoint, subscription };
}

/**
 * @param client - A reader of Tasks.
 * @param endpoint - The partner's Endpoint.
 * @returns Its delivery Tasks.
 */
export async function partnerDeliveries(client: MedplumClient, endpoint: Endpoint): Promise<WithId<Task>[]> {
  return client.searchResources('Task', {
    code: `${DELIVERY_TASK_CODE.system}|${DELIVERY_TASK_CODE.code}`,
    owner: `Endpoint/${endpoint.id}`,
    _count: '100',
  });
}

/**
 * Runs the `partner-delivery` cron pass once, as the cron worker would.
 * @param client - A client that may execute the bot.
 */
export async function runPartnerDeliveryPass(client: MedplumClient): Promise<void> {
  const bot = (await client.searchOne('Bot', { identifier: `${BOT_NAME_SYSTEM}|partner-delivery` })) as WithId<Bot>;
  await client.executeBot({ system: BOT_NAME_SYSTEM, value: 'partner-delivery' }, bot, 'application/fhir+json');
}

/**
 * @param body - A delivered notification Bundle.
 * @param resourceType - The type of its focus.
 * @returns The focus reference, `Type/id/_history/vid`.
 */
export function notificationFocus(body: Buffer, resourceType = 'Observation'): string {
  const bundle = JSON.parse(body.toString('utf8')) as Bundle;
  const status = bundle.entry?.[0]?.resource as Parameters;
  const event = status.parameter?.find((p) => p.name === 'notification-event');
  const focus = event?.part?.find((p) => p.name === 'focus')?.valueReference?.reference ?? '';
  return focus.slice(focus.indexOf(resourceType + '/'));
}
