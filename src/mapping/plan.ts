import type { Identifier, Reference, Resource } from '@medplum/fhirtypes';
import type { ErrorLocation } from '../hl7/ack.ts';
import { Hl7ErrorCode } from '../hl7/ack.ts';

/**
 * What mapping a message produces: the resources it asserts, each with the business identifiers
 * that find it again, and how to combine it with what is already stored. Mapping is pure; the
 * writer (src/fhir/writer.ts) resolves the identifiers on the server and commits everything in one
 * transaction.
 */
export interface MessagePlan {
  readonly resources: ResourcePlan[];
  /** Problems that did not stop the mapping (unmapped authority, unknown code system...). */
  readonly warnings: MappingIssue[];
}

/** How a planned resource is combined with the stored one it matches. */
export type MergeStrategy =
  /** The message's elements replace the stored ones; elements it does not carry are kept. */
  | 'overlay'
  /** Stored elements win; the message only adds what is missing (e.g. an order seen first in a result). */
  | 'fill'
  /** A stored resource is left as it is; only a missing one is created. */
  | 'keep';

/** One resource the message asserts. */
export interface ResourcePlan<T extends Resource = Resource> {
  /** Unique within the message, e.g. `Patient`, `Observation/1/3`. Other plans reference it with {@link localRef}. */
  readonly key: string;
  /** The content, without id or meta. */
  readonly resource: T;
  /**
   * Business identifiers (`system|value`) that find the stored resource; the resource carries
   * them too. Never empty: every resource written from a message can be found again, which is
   * what makes re-sent messages change nothing.
   */
  readonly identifiers: Identifier[];
  readonly merge: MergeStrategy;
  /** Top-level elements the sender explicitly deleted with `""`. */
  readonly clear?: string[];
  /**
   * Top-level elements the message supplies only as defaults for a new resource (a required
   * `status` the event does not imply): a stored value is kept even under `overlay`.
   */
  readonly defaultsOnly?: string[];
  /** Attachments whose content must be stored as a Binary (`Attachment.data` is moved out). */
  readonly uploads?: AttachmentUpload[];
}

/** Content of an Attachment to store as a Binary; the attachment gets its `url`. */
export interface AttachmentUpload {
  /** JSON path of the Attachment inside the resource, e.g. `presentedForm.0`. */
  readonly path: string;
  readonly contentType: string;
  /** Base64 content. */
  readonly data: string;
  /** SHA-1 of the content, base64, as in `Attachment.hash`: the same content is stored once. */
  readonly hash: string;
}

/** A data problem, reported in the ACK's ERR segment. */
export interface MappingIssue {
  readonly severity: 'error' | 'warning';
  readonly code: (typeof Hl7ErrorCode)[keyof typeof Hl7ErrorCode];
  /** Human-readable; never patient data. */
  readonly text: string;
  readonly location?: ErrorLocation;
}

/** Thrown by a mapping when the message cannot be committed as sent (answered AE). */
export class MappingError extends Error {
  readonly issue: MappingIssue;
  constructor(issue: Omit<MappingIssue, 'severity'>) {
    super(issue.text);
    this.issue = { ...issue, severity: 'error' };
  }
}

/** Prefix of references between planned resources, replaced by the writer. */
export const LOCAL_REFERENCE_PREFIX = 'local:';

/**
 * @param key - The key of another planned resource.
 * @param display - Optional display text.
 * @returns A reference the writer rewrites to `Type/id` (existing) or the new resource.
 */
export function localRef<T extends Resource = Resource>(key: string, display?: string): Reference<T> {
  return display ? { reference: LOCAL_REFERENCE_PREFIX + key, display } : { reference: LOCAL_REFERENCE_PREFIX + key };
}

/**
 * A plan as a feed that is not authoritative for it (demographics, visits) asserts it: merged with
 * `fill`, it only adds what the stored resource lacks. Such a plan asserts nothing, so it deletes
 * nothing either (`clear` dropped), and everything in it is already only a default
 * (`defaultsOnly` dropped).
 * @param plan - A plan.
 * @returns The same plan with merge `fill` and without `clear` or `defaultsOnly`.
 */
export function asFill<T extends ResourcePlan>(plan: T): T {
  const { clear: _clear, defaultsOnly: _defaults, ...rest } = plan;
  return { ...rest, merge: 'fill' } as T;
}

/**
 * Checks that every planned resource can be found again, once: no identifier value holds a `|`
 * (a token search splits `system|value` there, so the writer could never find the resource and
 * every re-sent message would create it again), and no two planned resources of the same type
 * share an identifier (the writer would create both, two stored resources with one identity that
 * every later message would find ambiguous, or update one twice in a transaction).
 * @param plan - A mapped message.
 * @throws MappingError (102 data type, or 205 duplicate key naming the two plan keys).
 */
export function assertFindableIdentities(plan: MessagePlan): void {
  const owners = new Map<string, string>();
  for (const p of plan.resources) {
    for (const identifier of p.identifiers) {
      if (identifier.value?.includes('|')) {
        throw new MappingError({
          code: Hl7ErrorCode.DataType,
          text: `An identifier of ${p.resource.resourceType} (${identifier.system ?? 'no system'}) contains '|' (\\F\\), which identifier searches cannot match`,
        });
      }
      const token = `${p.resource.resourceType} ${identifier.system ?? ''}|${identifier.value ?? ''}`;
      const owner = owners.get(token);
      if (owner !== undefined && owner !== p.key) {
        throw new MappingError({
          code: Hl7ErrorCode.DuplicateKey,
          text: `${owner} and ${p.key} are the same ${p.resource.resourceType} (same identifier ${identifier.system ?? ''}); the message describes it twice`,
        });
      }
      owners.set(token, p.key);
    }
  }
}
