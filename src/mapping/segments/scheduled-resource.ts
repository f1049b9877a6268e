import type { AppointmentParticipant, CodeableConcept } from '@medplum/fhirtypes';
import type { Timing } from './ai-timing.ts';

/** What one SIU resource segment (AIS, AIG, AIL, AIP) contributes to the Appointment. */
export interface ScheduledResource {
  /** The resource's own start and end (instants), used for the appointment's times. */
  readonly timing: Timing;
  /** The participant (without status, which depends on the whole appointment); none for AIS. */
  readonly participant?: Omit<AppointmentParticipant, 'status'>;
  /** Participant status from the segment's filler status code, when it says one. */
  readonly participantStatus?: AppointmentParticipant['status'];
  /** AIS-3 service → Appointment.serviceType. */
  readonly serviceType?: CodeableConcept;
  /** The filler status code (HL7 table 0278) as sent, e.g. `Booked`. */
  readonly fillerStatus?: string;
}

/** HL7 table 0278 filler status → the participant's answer to the booking. */
const PARTICIPANT_STATUS: Record<string, AppointmentParticipant['status']> = {
  booked: 'accepted',
  started: 'accepted',
  complete: 'accepted',
  overbook: 'accepted',
  pending: 'tentative',
  waitlist: 'tentative',
  cancelled: 'declined',
  deleted: 'declined',
  noshow: 'declined',
  discontinued: 'declined',
};

/**
 * @param code - A filler status code (AIG-14, AIL-12, AIP-12), as sent.
 * @returns The participant status, or undefined when the code is empty or unknown (`Blocked`).
 */
export function participantStatus(code: string): AppointmentParticipant['status'] | undefined {
  return PARTICIPANT_STATUS[code.trim().toLowerCase()];
}
