import type { Hl7Segment } from '@medplum/core';
import type { Organization, Practitioner, Reference } from '@medplum/fhirtypes';
import { isNullField, reps } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import { practitionerRef, xonOrganizationRef } from './practitioner.ts';

/** What PD1 says about the patient's primary care. */
export interface PrimaryCare {
  /** Patient.generalPractitioner: the practice(s), then the provider(s). */
  readonly generalPractitioner: Reference<Organization | Practitioner>[];
  /** True when the sender deleted the primary care with `""` (and named none). */
  readonly cleared: boolean;
}

/**
 * PD1 → Patient.generalPractitioner (IG PD1[Patient]): PD1-3 patient primary facility (XON) →
 * an Organization, PD1-4 patient primary care provider (XCN) → a Practitioner. Providers with an
 * id are planned (merge `fill`); without one only their name is kept on the reference.
 * @param pd1 - The PD1 segment, if any.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far; Organizations and Practitioners are added.
 * @returns The references, and whether `""` cleared them.
 */
export function mapPrimaryCare(pd1: Hl7Segment | undefined, ctx: MappingContext, plans: ResourcePlan[]): PrimaryCare {
  const generalPractitioner: Reference<Organization | Practitioner>[] = [];
  for (const xon of reps(pd1, 3)) {
    const ref = xonOrganizationRef(xon, ctx, { segment: 'PD1', field: 3 }, plans);
    if (ref) {
      generalPractitioner.push(ref);
    }
  }
  for (const xcn of reps(pd1, 4)) {
    const ref = practitionerRef(xcn, ctx, { segment: 'PD1', field: 4 }, plans);
    if (ref) {
      generalPractitioner.push(ref);
    }
  }
  const cleared =
    generalPractitioner.length === 0 && (isNullField(pd1, 3) || isNullField(pd1, 4)) && !reps(pd1, 3).concat(reps(pd1, 4)).some((r) => !r.isNull && !r.isEmpty());
  return { generalPractitioner, cleared };
}
