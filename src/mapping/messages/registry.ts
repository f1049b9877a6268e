import type { MessageHeaderInfo } from '../../hl7/message.ts';
import { adtMappers } from './adt.ts';
import { mdmMappers } from './mdm.ts';
import { orderMappers } from './orders.ts';
import { oruMappers } from './oru.ts';
import { siuMappers } from './siu.ts';
import type { MessageMapper, MessageMappers } from './types.ts';
import { vxuMappers } from './vxu.ts';

/** Every supported message type and event, by `<MSH-9.1>^<MSH-9.2>`. */
export const MESSAGE_MAPPERS: MessageMappers = {
  ...adtMappers,
  ...oruMappers,
  ...orderMappers,
  ...vxuMappers,
  ...mdmMappers,
  ...siuMappers,
};

/**
 * @param header - The message's MSH.
 * @returns The map for its type and event, or undefined when the hub does not support it.
 */
export function findMessageMapper(header: MessageHeaderInfo): MessageMapper | undefined {
  return MESSAGE_MAPPERS[`${header.messageCode}^${header.triggerEvent}`];
}
