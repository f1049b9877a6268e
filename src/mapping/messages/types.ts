import type { Hl7Message } from '@medplum/core';
import type { MappingContext } from '../context.ts';
import type { MessagePlan } from '../plan.ts';

/**
 * A message map (the IG's third layer): one message structure to the resources it asserts.
 * Pure: everything it needs is in the message and the context.
 */
export type MessageMapper = (message: Hl7Message, ctx: MappingContext) => MessagePlan;

/** Message maps by `<MSH-9.1>^<MSH-9.2>`, e.g. `ADT^A01`. */
export type MessageMappers = Readonly<Record<string, MessageMapper>>;
