import type { Endpoint, ProjectSetting } from '@medplum/fhirtypes';
import { HUB_URI } from '../constants.ts';

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
  /** `AccessPolicy/<id>` of the partner's scope, if any. */
  readonly accessPolicy?: string;
}

/**
 * Reads a partner from its Endpoint and the bot secrets it names (the secrets themselves never
 * live in a resource).
 * @param endpoint - The partner Endpoint.
 * @param secrets - `event.secrets`.
 * @returns The partner, or what is wrong with its configuration (names, never secret values).
 */
export function readPartner(endpoint: Endpoint, secrets: Record<string, ProjectSetting> | undefined): { partner: Partner } | { problems: string[] } {
  const label = `Endpoint/${endpoint.id}`;
  const problems: string[] = [];
  const ext = (url: string): { valueString?: string; valueDecimal?: number; valueReference?: { reference?: string } } | undefined =>
    endpoint.extension?.find((e) => e.url === url);
  if (!/^https?:\/\//.test(endpoint.address ?? '')) {
    problems.push(`${label}: address must be the partner's http(s) URL`);
  }
  const names = (ext(PartnerExtension.secretNames)?.valueString ?? '').split(',').map((n) => n.trim()).filter(Boolean);
  if (names.length === 0) {
    problems.push(`${label}: no ${PartnerExtension.secretNames} extension naming the signing secret`);
  }
  const values: string[] = [];
  for (const name of names) {
    const value = secrets?.[name]?.valueString;
    if (value) {
      values.push(value);
    } else if (name === names[0]) {
      problems.push(`${label}: the bot secret ${name} is not set`);
    }
  }
  const payload = ext(PartnerExtension.payload)?.valueString ?? 'notification-bundle';
  if (payload !== 'notification-bundle' && payload !== 'resource') {
    problems.push(`${label}: ${PartnerExtension.payload} must be notification-bundle or resource`);
  }
  if (problems.length) {
    return { problems };
  }
  const hours = ext(PartnerExtension.retryWindowHours)?.valueDecimal ?? 72;
  const base = ext(PartnerExtension.retryBaseSeconds)?.valueDecimal ?? 30;
  return {
    partner: {
      name: endpoint.name ?? label,
      endpoint: label,
      url: endpoint.address,
      secrets: values,
      payload: payload as Partner['payload'],
      retryWindowMs: Math.max(0, hours) * 3600_000,
      retryBaseMs: Math.max(0, base) * 1000,
      accessPolicy: ext(PartnerExtension.accessPolicy)?.valueReference?.reference,
    },
  };
}

