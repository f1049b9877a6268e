import type { CodeableConcept, Encounter, Identifier, Patient, Reference, ServiceRequest, Specimen } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { isNullField, rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import { eiToIdentifier } from '../datatypes/identifier.ts';
import type { OrderGroup, SegmentRef } from '../groups.ts';
import { at } from '../groups.ts';
import { identifierToken } from '../keys.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef, MappingError } from '../plan.ts';
import { ntesToAnnotations } from './nte.ts';
import { practitionerRef } from './practitioner.ts';
import { orderTiming } from './tq1.ts';

/** The order numbers of an order group. */
export interface OrderNumbers {
  /** OBR-2, else ORC-2 (type PLAC). */
  readonly placer?: Identifier;
  /** OBR-3, else ORC-3 (type FILL). */
  readonly filler?: Identifier;
}

/**
 * Reads the placer and filler order numbers of an order (IG: OBR-2/ORC-2 → identifier type PLAC,
 * OBR-3/ORC-3 → type FILL, EI → system through the NamingSystems). OBR's numbers win; ORC's are
 * used when OBR's are empty (v2 requires them to be equal when both are sent).
 * @param orc - The group's ORC, if any.
 * @param obr - The group's OBR, if any.
 * @param ctx - The mapping context.
 * @returns The numbers; throws a MappingError when the order has neither.
 */
export function orderNumbers(orc: SegmentRef | undefined, obr: SegmentRef | undefined, ctx: MappingContext): OrderNumbers {
  const read = (field: 2 | 3, type: 'PLAC' | 'FILL'): Identifier | undefined => {
    for (const ref of [obr, orc]) {
      const ei = ref ? rep(ref.segment, field) : undefined;
      const identifier = ref && ei ? eiToIdentifier(ei, ctx, type, at(ref, field)) : undefined;
      if (identifier) {
        return identifier;
      }
    }
    return undefined;
  };
  const placer = read(2, 'PLAC');
  const filler = read(3, 'FILL');
  if (!placer && !filler) {
    const ref = obr ?? orc;
    throw new MappingError({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: `${ref?.segment.name ?? 'OBR'} has neither a placer (field 2) nor a filler (field 3) order number`,
      location: ref ? at(ref, 3) : { segment: 'OBR', field: 3 },
    });
  }
  return { ...(placer ? { placer } : {}), ...(filler ? { filler } : {}) };
}

/** HL7 table 0038 order status (ORC-5) → FHIR request-status (IG OrderStatus map). */
const ORDER_STATUS: Record<string, ServiceRequest['status']> = {
  A: 'active',
  CA: 'revoked',
  CM: 'completed',
  DC: 'revoked',
  ER: 'entered-in-error',
  HD: 'on-hold',
  IP: 'active',
  RP: 'revoked',
  SC: 'active',
};

/**
 * HL7 table 0119 order control (ORC-1) → FHIR request-status, for the codes that state the
 * order's status by themselves. The hub records orders as the placer states them, so a cancel
 * or discontinue request (CA, DC) revokes the order at once (the IG maps CA to `active`, the
 * state before the filler confirms; the hub is not the filler).
 */
const CONTROL_STATUS: Record<string, ServiceRequest['status']> = {
  NW: 'active',
  OK: 'active',
  RO: 'active',
  RL: 'active',
  PA: 'active',
  CH: 'active',
  CA: 'revoked',
  CR: 'revoked',
  OC: 'revoked',
  DC: 'revoked',
  DR: 'revoked',
  OD: 'revoked',
  HD: 'on-hold',
  HR: 'on-hold',
  OH: 'on-hold',
};

/** Control codes that change an order without stating its status: ORC-5 says it, else it stays active. */
const CHANGE_CONTROLS = new Set(['XO', 'XX', 'XR']);

/**
 * The order status an order message states (ORC-1 with ORC-5): NW → active; CA/OC/DC (and
 * CR/DR/OD) → revoked; HD/OH/HR → on-hold; XO/XX/XR → ORC-5 if sent, else active; SC (status
 * changed) and other codes → ORC-5 (IP/SC/A → active, CM → completed, CA/DC/RP → revoked,
 * HD → on-hold, ER → entered-in-error).
 * @param orc - The ORC.
 * @returns The status, or undefined when the message does not state one.
 */
export function orderStatus(orc: SegmentRef | undefined): ServiceRequest['status'] | undefined {
  if (!orc) {
    return undefined;
  }
  const control = val(orc.segment, 1).trim().toUpperCase();
  const status = ORDER_STATUS[val(orc.segment, 5).trim().toUpperCase()];
  const fromControl = CONTROL_STATUS[control];
  if (fromControl) {
    return fromControl;
  }
  if (CHANGE_CONTROLS.has(control)) {
    return status ?? 'active';
  }
  return status;
}

/** How the ServiceRequest is asserted: by an order message, or seen first in a result. */
export type ServiceRequestMode = 'order' | 'result';

/** What a ServiceRequest refers to. */
export interface ServiceRequestRefs {
  readonly patientKey: string;
  readonly encounterKey?: string;
  /** Plan keys of the order's Specimens (OML). */
  readonly specimenKeys?: readonly string[];
  /** Plan keys of observations sent with the order (ask-at-order-entry answers). */
  readonly supportingInfoKeys?: readonly string[];
  /** Status to assume for a new order when the ORC states none (results: from OBR-25). */
  readonly defaultStatus?: ServiceRequest['status'];
}

/**
 * ORC + OBR (+ TQ1, DG1, NTE) → ServiceRequest (IG ORC[ServiceRequest], OBR[ServiceRequest] and
 * TQ1[ServiceRequest] maps): identifiers placer (PLAC) and filler (FILL), ORC-4 → requisition
 * (placer group number), status from ORC-1/ORC-5, intent `order`, OBR-4 → code, TQ1/OBR-27 →
 * priority and occurrence, ORC-9 → authoredOn (a default only, unless ORC-1 is NW), ORC-12
 * (else OBR-16) → requester, OBR-31 and the group's DG1-3 → reasonCode, NTE → note (order messages only), Specimens and supporting
 * observations by reference. An order message is authoritative for its order (`overlay`); an
 * order first seen in a result is only filled in (`fill`), so the later order message wins.
 * @param order - The order group.
 * @param numbers - Its order numbers.
 * @param mode - `order` (ORM/OML) or `result` (ORU).
 * @param refs - Plan keys of what it refers to.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far (practitioners are added).
 * @returns The ServiceRequest plan.
 */
export function mapServiceRequest(
  order: OrderGroup,
  numbers: OrderNumbers,
  mode: ServiceRequestMode,
  refs: ServiceRequestRefs,
  ctx: MappingContext,
  plans: ResourcePlan[]
): ResourcePlan<ServiceRequest> {
  const { orc, obr } = order;
  const identifiers = [numbers.placer, numbers.filler].filter((i): i is Identifier => Boolean(i));
  const stated = orderStatus(orc);
  const request: ServiceRequest = {
    resourceType: 'ServiceRequest',
    identifier: identifiers,
    status: stated ?? refs.defaultStatus ?? 'active',
    intent: 'order',
    subject: localRef<Patient>(refs.patientKey),
  };
  const clear: string[] = [];

  const requisition = orc ? rep(orc.segment, 4) : undefined;
  const requisitionId = orc && requisition ? eiToIdentifier(requisition, ctx, 'PGN', at(orc, 4)) : undefined;
  if (requisitionId) {
    request.requisition = requisitionId;
  }
  const code = obr ? rep(obr.segment, 4) : undefined;
  const concept = code ? cweToCodeableConcept(code, ctx) : undefined;
  if (concept) {
    request.code = concept;
  }
  const timing = orderTiming(order.timing, obr, orc, ctx);
  Object.assign(request, timing);
  if (refs.encounterKey) {
    request.encounter = localRef<Encounter>(refs.encounterKey);
  }
  const authored = orc ? ctx.dateTime(val(orc.segment, 9), at(orc, 9)) : undefined;
  if (authored) {
    request.authoredOn = authored;
  }

  const requester = requesterRef(orc, obr, ctx, plans);
  if (requester) {
    request.requester = requester;
  } else if (orc && isNullField(orc.segment, 12)) {
    clear.push('requester');
  }

  const reasons: CodeableConcept[] = [];
  for (const reason of obr ? reps(obr.segment, 31) : []) {
    const c = cweToCodeableConcept(reason, ctx);
    if (c) {
      reasons.push(c);
    }
  }
  for (const dg1 of order.diagnoses) {
    const diagnosis = rep(dg1.segment, 3);
    const c = diagnosis ? cweToCodeableConcept(diagnosis, ctx) : undefined;
    if (c && !reasons.some((r) => JSON.stringify(r) === JSON.stringify(c))) {
      reasons.push(c);
    }
  }
  if (reasons.length) {
    request.reasonCode = reasons;
  } else if (obr && isNullField(obr.segment, 31)) {
    clear.push('reasonCode');
  }

  if (mode === 'order') {
    const notes = ntesToAnnotations(order.notes, ctx, plans);
    if (notes.length) {
      request.note = notes;
    }
  }
  if (refs.specimenKeys?.length) {
    request.specimen = refs.specimenKeys.map((key) => localRef<Specimen>(key));
  }
  if (refs.supportingInfoKeys?.length) {
    request.supportingInfo = refs.supportingInfoKeys.map((key) => localRef(key) as Reference);
  }

  // ORC-9 is the time of this transaction: the order's authoredOn only in a new order (NW); a
  // cancel or change keeps the stored one and gives it only to an order first seen now.
  const control = orc ? val(orc.segment, 1).trim().toUpperCase() : '';
  const defaultsOnly = [...(stated ? [] : ['status']), ...(authored && control !== 'NW' ? ['authoredOn'] : [])];
  return {
    key: serviceRequestKey(numbers, mode),
    resource: request,
    identifiers,
    merge: mode === 'order' ? 'overlay' : 'fill',
    ...(mode === 'order' && defaultsOnly.length ? { defaultsOnly } : {}),
    ...(mode === 'order' && clear.length ? { clear } : {}),
  };
}

/**
 * @param numbers - An order's numbers.
 * @param mode - Order messages key orders by the placer number, results by the filler number.
 * @returns The ServiceRequest's plan key.
 */
export function serviceRequestKey(numbers: OrderNumbers, mode: ServiceRequestMode): string {
  const match = mode === 'order' ? (numbers.placer ?? numbers.filler) : (numbers.filler ?? numbers.placer);
  return 'ServiceRequest/' + identifierToken(match);
}

/**
 * The ordering provider: ORC-12 (IG ORC[ServiceRequest]), else OBR-16.
 * @returns A reference (a Practitioner is planned when the provider has an id), or undefined.
 */
export function requesterRef(
  orc: SegmentRef | undefined,
  obr: SegmentRef | undefined,
  ctx: MappingContext,
  plans: ResourcePlan[]
): ServiceRequest['requester'] | undefined {
  for (const [ref, field] of [
    [orc, 12],
    [obr, 16],
  ] as const) {
    const xcn = ref ? rep(ref.segment, field) : undefined;
    const reference = ref ? practitionerRef(xcn, ctx, at(ref, field), plans) : undefined;
    if (reference) {
      return reference;
    }
  }
  return undefined;
}
