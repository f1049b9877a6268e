import type { Endpoint, ProjectSetting } from '@medplum/fhirtypes';
import { HUB_URI } from '../constants.ts';
import { signStandardWebhook } from './standard-webhooks.ts';

/** `Endpoint.connectionType` of a partner that receives signed webhooks. */
export const PARTNER_WEBHOOK_CONNECTION = { system: `${HUB_URI}/CodeSystem/endpoint-connection-type`, code: 'partner-webhook' } as const;

/** Extensions of a partner Endpoint, and of the Subscriptions that feed it. */
export const PartnerExtension = {
  /** Names of the bot secrets with the partner's signing secrets (`whsec_…`), comma-separated: the current one first; during a rotation, the previous one too. */
  secretNames: `${HUB_URI}/StructureDefinition/partner-secret-names`,
  /** `notification-bundle` (R4 Backport notification, the default) or `resource`. */
  payload: `${HUB_URI}/StructureDefinition/partner-payload`,
  /** How long failed deliveries are retried before they go to the dead-letter (hours, default 72). */
  retryWindowHours: `${HUB_URI}/StructureDefinition/partner-retry-window-hours`,
  /** First retry delay in seconds (default 30); it doubles per attempt, up to an hour. */
  retryBaseSeconds: `${HUB_URI}/StructureDefinition/partner-retry-base-seconds`,
  /**
   * Seconds an event waits before it is sent (default 15): subscription runs for one resource can
   * finish out of order, and an earlier version must be queued before a later one is sent.
   */
  settleSeconds: `${HUB_URI}/StructureDefinition/partner-settle-seconds`,
  /** The AccessPolicy saying what the partner may receive (valueReference). */
  accessPolicy: `${HUB_URI}/StructureDefinition/partner-access-policy`,
  /** On a Subscription: the partner Endpoint its events go to (valueReference). */
  endpoint: `${HUB_URI}/StructureDefinition/partner-endpoint`,
} as const;

/** A partner, read from its Endpoint and the bot secrets. */
export interface Partner {
  readonly name: string;
  /** `Endpoint/<id>`. */
  readonly endpoint: string;
  readonly url: string;
  /** Signing secrets, current first. */
  readonly secrets: string[];
  readonly payload: 'notification-bundle' | 'resource';
  readonly retryWindowMs: number;
  readonly retryBaseMs: number;
  readonly settleMs: number;
  /** `AccessPolicy/<id>` of the partner's scope, if any. */
  readonly accessPolicy?: string;
}

/**
 * Reads a partner from its Endpoint and the bot secrets it names (the secrets themselves never
 * live in a resource). A partner whose signing secret is missing or malformed is still read, with
 * the problem: its events are queued and wait until the secret is fixed.
 * @param endpoint - The partner Endpoint.
 * @param secrets - `event.secrets`.
 * @returns The partner (absent when the Endpoint itself is unusable) and the problems (names,
 * never secret values).
 */
export function readPartner(endpoint: Endpoint, secrets: Record<string, ProjectSetting> | undefined): { partner?: Partner; problems: string[] } {
  const label = `Endpoint/${endpoint.id}`;
  const problems: string[] = [];
  const ext = (url: string): { valueString?: string; valueDecimal?: number; valueReference?: { reference?: string } } | undefined =>
    endpoint.extension?.find((e) => e.url === url);
  const address = /^https?:\/\//.test(endpoint.address ?? '');
  if (!address) {
    problems.push(`${label}: address must be the partner's http(s) URL`);
  }
  const payload = ext(PartnerExtension.payload)?.valueString ?? 'notification-bundle';
  if (payload !== 'notification-bundle' && payload !== 'resource') {
    problems.push(`${label}: ${PartnerExtension.payload} must be notification-bundle or resource`);
  }
  const usable = problems.length === 0;
  const names = (ext(PartnerExtension.secretNames)?.valueString ?? '').split(',').map((n) => n.trim()).filter(Boolean);
  if (names.length === 0) {
    problems.push(`${label}: no ${PartnerExtension.secretNames} extension naming the signing secret`);
  }
  const values: string[] = [];
  for (const [i, name] of names.entries()) {
    const value = secrets?.[name]?.valueString;
    if (!value) {
      if (i === 0) {
        problems.push(`${label}: the bot secret ${name} is not set`);
      }
    } else if (!isWebhookSecret(value)) {
      problems.push(`${label}: the bot secret ${name} is not a Standard Webhooks secret (whsec_ and base64 of at least 24 bytes)`);
    } else {
      values.push(value);
    }
  }
  if (!usable) {
    return { problems };
  }
  const number = (url: string, fallback: number): number => Math.max(0, ext(url)?.valueDecimal ?? fallback);
  return {
    partner: {
      name: endpoint.name ?? label,
      endpoint: label,
      url: endpoint.address,
      secrets: values,
      payload: payload as Partner['payload'],
      retryWindowMs: number(PartnerExtension.retryWindowHours, 72) * 3600_000,
      retryBaseMs: number(PartnerExtension.retryBaseSeconds, 30) * 1000,
      settleMs: number(PartnerExtension.settleSeconds, 15) * 1000,
      accessPolicy: ext(PartnerExtension.accessPolicy)?.valueReference?.reference,
    },
    problems,
  };
}

function isWebhookSecret(value: string): boolean {
  try {
    signStandardWebhook({ id: 'check', timestamp: 0, body: '', secrets: [value] });
    return true;
  } catch {
    return false;
  }
}
