import type { Hl7Message } from '@medplum/core';
import type { CodeableConcept } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import type { MappingContext } from '../context.ts';
import type { OrderGroup, SubjectKeys } from '../groups.ts';
import { at, mapSubject, readOrderGroups } from '../groups.ts';
import { identifierToken } from '../keys.ts';
import type { MessagePlan, ResourcePlan } from '../plan.ts';
import { MappingError } from '../plan.ts';
import { observationCategory } from '../segments/obr.ts';
import type { ObservationContext } from '../segments/obx.ts';
import { groupObservations, mapObservation } from '../segments/obx.ts';
import { mapServiceRequest, orderNumbers, serviceRequestKey } from '../segments/orc.ts';
import { mapSpecimen } from '../segments/spm.ts';
import type { MessageMappers } from './types.ts';

const LABORATORY: CodeableConcept[] = [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }];

/**
 * ORM^O01 (general order), IG ORM_O01 message map: one ServiceRequest per ORDER group (ORC with
 * its OBR, or an ORC alone: a cancel or status change that names only the order numbers),
 * merged `overlay` (the order message is authoritative for the order; its status only when
 * ORC-1/ORC-5 state one). The Patient and Encounter are merged `fill`. OBX segments of an order
 * (ask-at-order-entry answers) become Observations referenced as supportingInfo. Pharmacy and
 * other non-OBR order details (RXO, ODS, ...) are not lab orders: skipped with a warning.
 * @param message - The message.
 * @param ctx - The mapping context.
 * @returns The plan.
 */
export function mapOrmO01(message: Hl7Message, ctx: MappingContext): MessagePlan {
  return mapOrderMessage(message, ctx);
}

/**
 * OML^O21 (laboratory order), IG OML_O21 message map: like ORM^O01, with several ORDER groups
 * (ORC [TQ1] OBR [NTE] [DG1] {OBX} {SPM {OBX}}); each SPM becomes a Specimen the ServiceRequest
 * references (one tube shared by several orders is one Specimen requested by each). A second
 * patient (PRIOR_RESULT groups) is refused rather than mixed into the order.
 * @param message - The message.
 * @param ctx - The mapping context.
 * @returns The plan.
 */
export function mapOmlO21(message: Hl7Message, ctx: MappingContext): MessagePlan {
  return mapOrderMessage(message, ctx);
}

function mapOrderMessage(message: Hl7Message, ctx: MappingContext): MessagePlan {
  const plans: ResourcePlan[] = [];
  const groups = readOrderGroups(message).patients;
  if (groups.length > 1) {
    const second = groups[1].pid;
    throw new MappingError({
      code: Hl7ErrorCode.SegmentSequence,
      text: 'A second PID (another patient or prior results) is not supported in an order message',
      location: second ? at(second) : { segment: 'PID' },
    });
  }
  const group = groups[0];
  if (!group) {
    throw new MappingError({ code: Hl7ErrorCode.SegmentSequence, text: 'PID segment missing', location: { segment: 'PID' } });
  }
  const subject = mapSubject(group, 0, ctx, plans);
  if (group.orders.length === 0) {
    throw new MappingError({ code: Hl7ErrorCode.SegmentSequence, text: 'ORC segment missing: no order in the message', location: { segment: 'ORC' } });
  }
  if (group.observations.length) {
    ctx.warn({ code: Hl7ErrorCode.SegmentSequence, text: 'OBX outside an order group not mapped', location: at(group.observations[0].obx) });
  }
  for (const order of group.orders) {
    mapOrder(order, subject, ctx, plans);
  }
  return { resources: plans, warnings: ctx.warnings };
}

function mapOrder(order: OrderGroup, subject: SubjectKeys, ctx: MappingContext, plans: ResourcePlan[]): void {
  const { orc, obr } = order;
  if (!orc) {
    const where = obr ?? order.otherDetail ?? order.specimens[0]?.spm;
    throw new MappingError({
      code: Hl7ErrorCode.SegmentSequence,
      text: 'Order detail without a preceding ORC',
      location: where ? at(where) : { segment: 'ORC' },
    });
  }
  if (order.otherDetail) {
    ctx.warn({
      code: Hl7ErrorCode.UnsupportedEventCode,
      text: `${order.otherDetail.segment.name} order is not a laboratory or diagnostic order; not mapped`,
      location: at(order.otherDetail),
    });
    return;
  }
  const numbers = orderNumbers(orc, obr, ctx);
  const key = serviceRequestKey(numbers, 'order');
  if (plans.some((p) => p.key === key)) {
    throw new MappingError({
      code: Hl7ErrorCode.SegmentSequence,
      text: 'Two order groups have the same order number',
      location: at(orc, numbers.placer ? 2 : 3),
    });
  }
  // The ServiceRequest goes first in the plan; Specimens and observations refer to its key.
  const position = plans.length;
  const orderToken = identifierToken(numbers.placer ?? numbers.filler);
  const specimens = order.specimens.map((group) => mapSpecimen(group, { patientKey: subject.patientKey, serviceRequestKey: key, orderToken }, ctx, plans));

  const base: ObservationContext = {
    orderToken,
    ...subject,
    serviceRequestKey: key,
    category: obr ? (code) => observationCategory(obr, code) : () => LABORATORY,
    effective: {},
  };
  const seen = new Map<string, number>();
  const supportingInfoKeys: string[] = [];
  const observationSets = [
    { groups: order.observations, octx: base },
    ...order.specimens.map((s, i) => ({ groups: s.observations, octx: { ...base, specimen: specimens[i] } })),
  ];
  for (const { groups, octx } of observationSets) {
    for (const parts of groupObservations(groups)) {
      const result = mapObservation(parts, octx, ctx, plans, seen);
      if (result?.kind === 'observation') {
        plans.push(result.plan);
        supportingInfoKeys.push(result.plan.key);
      } else if (result) {
        ctx.warn({ code: Hl7ErrorCode.DataType, text: 'Document (ED/RP) in an order message not mapped', location: at(parts[0].obx, 5) });
      }
    }
  }

  const request = mapServiceRequest(
    order,
    numbers,
    'order',
    { ...subject, specimenKeys: [...new Set(specimens.map((s) => s.key))], supportingInfoKeys },
    ctx,
    plans
  );
  plans.splice(position, 0, request);
}

/** Message maps of this family. */
export const orderMappers: MessageMappers = {
  'ORM^O01': mapOrmO01,
  'OML^O21': mapOmlO21,
};
