import type { Hl7Message } from '@medplum/core';
import type { Observation } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import type { MappingContext } from '../context.ts';
import type { OrderGroup, SubjectKeys } from '../groups.ts';
import { at, mapSubject, readOrderGroups } from '../groups.ts';
import { identifierToken } from '../keys.ts';
import type { MessagePlan, ResourcePlan } from '../plan.ts';
import { MappingError } from '../plan.ts';
import { ntesToText } from '../segments/nte.ts';
import type { ReportParts } from '../segments/obr.ts';
import {
  mapDiagnosticReport,
  observationCategory,
  observationStatusFromReport,
  orderStatusFromReport,
  reportEffective,
  reportIssued,
  specimenSourceDisplay,
} from '../segments/obr.ts';
import type { MappedObservation, ObservationContext } from '../segments/obx.ts';
import { groupObservations, mapObservation } from '../segments/obx.ts';
import { mapServiceRequest, orderNumbers } from '../segments/orc.ts';
import type { SpecimenKey } from '../segments/spm.ts';
import { mapSpecimen } from '../segments/spm.ts';
import type { MessageMappers } from './types.ts';

/**
 * ORU^R01 (unsolicited observation result), IG ORU_R01 message map. Each PATIENT_RESULT group
 * gives a Patient (and Encounter, merged `fill`: the lab is not authoritative for them); each
 * ORDER_OBSERVATION group ([ORC] OBR [NTE] [TQ1] {OBX [NTE]} {SPM {OBX}}) gives:
 * - a ServiceRequest when the group names an order (an ORC or a placer number), merged `fill` so
 *   a result that arrives before its order creates it and the later ORM overlays it; built from
 *   the group's own ORC only;
 * - one Observation per OBX (text OBX continuing the same OBX-3/OBX-4 are joined), keyed by the
 *   order's filler number (else placer), OBX-3 and OBX-4, so P → F → C update one Observation;
 * - one Specimen per SPM; OBX after an SPM are specimen observations (focus/specimen → it) and
 *   are also results of the report (never dropped);
 * - one DiagnosticReport (merge `overlay`) with the results, specimens, report comments (NTE
 *   after OBR → conclusion) and ED documents (→ presentedForm, content uploaded as a Binary).
 * Several PATIENT_RESULT groups are supported (one Patient each; the same patient twice is one).
 * @param message - The message.
 * @param ctx - The mapping context.
 * @returns The plan.
 */
export function mapOruR01(message: Hl7Message, ctx: MappingContext): MessagePlan {
  const plans: ResourcePlan[] = [];
  const groups = readOrderGroups(message).patients;
  if (groups.length === 0) {
    throw new MappingError({ code: Hl7ErrorCode.SegmentSequence, text: 'PID segment missing', location: { segment: 'PID' } });
  }
  groups.forEach((group, index) => {
    const subject = mapSubject(group, index, ctx, plans);
    if (group.orders.length === 0) {
      throw new MappingError({
        code: Hl7ErrorCode.SegmentSequence,
        text: 'OBR segment missing: a result needs an order group',
        location: group.pid ? at(group.pid) : { segment: 'OBR' },
      });
    }
    if (group.observations.length) {
      ctx.warn({
        code: Hl7ErrorCode.SegmentSequence,
        text: 'OBX before any OBR (patient observations) not mapped',
        location: at(group.observations[0].obx),
      });
    }
    for (const order of group.orders) {
      mapResultOrder(order, subject, ctx, plans);
    }
  });
  return { resources: plans, warnings: ctx.warnings };
}

function mapResultOrder(order: OrderGroup, subject: SubjectKeys, ctx: MappingContext, plans: ResourcePlan[]): void {
  const { obr } = order;
  if (!obr) {
    const where = order.orc ?? order.otherDetail ?? order.specimens[0]?.spm;
    throw new MappingError({
      code: Hl7ErrorCode.SegmentSequence,
      text: 'OBR segment missing: every order group of a result needs its own OBR',
      location: where ? at(where) : { segment: 'OBR' },
    });
  }
  const numbers = orderNumbers(order.orc, obr, ctx);
  const orderToken = identifierToken(numbers.filler ?? numbers.placer);
  const reportKey = `DiagnosticReport/${orderToken}`;
  if (plans.some((p) => p.key === reportKey)) {
    throw new MappingError({
      code: Hl7ErrorCode.SegmentSequence,
      text: 'Two order groups have the same order number',
      location: at(obr, numbers.filler ? 3 : 2),
    });
  }

  // A result implies an order when it names one: an ORC, or the placer's order number. A filler
  // number alone (a reflex test, a monitor's batch of vitals) is no order anyone placed.
  let serviceRequestKey: string | undefined;
  if (order.orc || numbers.placer) {
    const request = mapServiceRequest(order, numbers, 'result', { ...subject, defaultStatus: orderStatusFromReport(obr) }, ctx, plans);
    plans.push(request);
    serviceRequestKey = request.key;
  }

  const specimens: SpecimenKey[] = order.specimens.map((group) =>
    mapSpecimen(group, { patientKey: subject.patientKey, serviceRequestKey, orderToken }, ctx, plans)
  );
  const specimenDisplay = specimens.length ? undefined : specimenSourceDisplay(obr);
  const effective = reportEffective(obr, ctx);
  const issued = reportIssued(obr, ctx);
  const base: ObservationContext = {
    orderToken,
    ...subject,
    ...(serviceRequestKey ? { serviceRequestKey } : {}),
    // With one specimen, every result of the order was made on it.
    ...(specimens.length === 1 ? { specimenKey: specimens[0].key } : {}),
    ...(specimenDisplay ? { specimenDisplay } : {}),
    category: (code) => observationCategory(obr, code),
    effective,
    ...(issued ? { issued } : {}),
    defaultStatus: observationStatusFromReport(obr),
  };

  const seen = new Map<string, number>();
  const mapped: MappedObservation[] = [];
  for (const parts of groupObservations(order.observations)) {
    const result = mapObservation(parts, base, ctx, plans, seen);
    if (result) {
      mapped.push(result);
    }
  }
  order.specimens.forEach((group, i) => {
    for (const parts of groupObservations(group.observations)) {
      const result = mapObservation(parts, { ...base, specimen: specimens[i] }, ctx, plans, seen);
      if (result) {
        mapped.push(result);
      }
    }
  });

  const resultKeys: string[] = [];
  const resultStatuses: Observation['status'][] = [];
  const vitalSigns: boolean[] = [];
  const documents: ReportParts['documents'][number][] = [];
  for (const item of mapped) {
    if (item.kind === 'observation') {
      plans.push(item.plan);
      resultKeys.push(item.plan.key);
      resultStatuses.push(item.plan.resource.status);
      vitalSigns.push(Boolean(item.plan.resource.category?.some((c) => c.coding?.some((k) => k.code === 'vital-signs'))));
    } else {
      documents.push(...item.documents.map((d) => ({ ...d, title: item.title, creation: item.creation })));
    }
  }
  const conclusion = ntesToText(order.notes);
  plans.push(
    mapDiagnosticReport(
      obr,
      numbers,
      {
        ...subject,
        ...(serviceRequestKey ? { serviceRequestKey } : {}),
        specimenKeys: [...new Set(specimens.map((s) => s.key))],
        ...(specimenDisplay ? { specimenDisplay } : {}),
        resultKeys,
        resultStatuses,
        vitalSignsOnly: vitalSigns.length > 0 && vitalSigns.every(Boolean),
        documents,
        ...(conclusion ? { conclusion } : {}),
        effective,
        ...(issued ? { issued } : {}),
      },
      reportKey,
      ctx,
      plans
    )
  );
}

/** Message maps of this family. */
export const oruMappers: MessageMappers = {
  'ORU^R01': mapOruR01,
};
