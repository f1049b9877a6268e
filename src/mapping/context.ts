import { deepEquals } from '@medplum/core';
import type { Coding, ConceptMap, NamingSystem, Organization } from '@medplum/fhirtypes';
import { HL7_SENDER_SYSTEM, HUB_SID, SENDER_TIMEZONE_EXTENSION } from '../constants.ts';
import type { ErrorLocation } from '../hl7/ack.ts';
import { Hl7ErrorCode } from '../hl7/ack.ts';
import type { DateTimeResult } from '../hl7/datetime.ts';
import { dtmToFhirDateTime, dtmToFhirInstant, dtToFhirDate, tmToFhirTime } from '../hl7/datetime.ts';
import type { MessageHeaderInfo } from '../hl7/message.ts';
import type { MappingIssue } from './plan.ts';
import { MappingError } from './plan.ts';

/** Configuration as data (resources under seed/), read by the inbound bots before mapping. */
export interface MappingConfig {
  /** Assigning authorities to identifier systems (`uniqueId` type `other` = the HL7 namespace id). */
  readonly namingSystems: readonly NamingSystem[];
  /** Local codes to standard codes. */
  readonly conceptMaps: readonly ConceptMap[];
  /** Sender settings: Organizations identified by `HL7_SENDER_SYSTEM|<MSH-4.1>` (or `|*` for all). */
  readonly senders: readonly Organization[];
}

/** An empty configuration. */
export const EMPTY_MAPPING_CONFIG: MappingConfig = { namingSystems: [], conceptMaps: [], senders: [] };

/**
 * HL7 table 0396 coding-system names to FHIR code system URIs (the IG's table-0396 map, for the
 * systems hospital feeds use). Names not listed, `L`, `LN`-like local tables (`99zzz`) and empty
 * ones are the sender's own codes.
 */
const TABLE_0396: Record<string, string> = {
  LN: 'http://loinc.org',
  LNC: 'http://loinc.org',
  SCT: 'http://snomed.info/sct',
  SNM: 'http://snomed.info/sct',
  SNOMEDCT: 'http://snomed.info/sct',
  I10: 'http://hl7.org/fhir/sid/icd-10-cm',
  I10C: 'http://hl7.org/fhir/sid/icd-10-cm',
  'ICD10CM': 'http://hl7.org/fhir/sid/icd-10-cm',
  I10P: 'http://www.cms.gov/Medicare/Coding/ICD10',
  I9: 'http://hl7.org/fhir/sid/icd-9-cm',
  I9C: 'http://hl7.org/fhir/sid/icd-9-cm',
  C4: 'http://www.ama-assn.org/go/cpt',
  CPT: 'http://www.ama-assn.org/go/cpt',
  HCPCS: 'urn:oid:2.16.840.1.113883.6.285',
  CVX: 'http://hl7.org/fhir/sid/cvx',
  MVX: 'http://hl7.org/fhir/sid/mvx',
  NDC: 'http://hl7.org/fhir/sid/ndc',
  RXNORM: 'http://www.nlm.nih.gov/research/umls/rxnorm',
  RXN: 'http://www.nlm.nih.gov/research/umls/rxnorm',
  UCUM: 'http://unitsofmeasure.org',
  NPI: 'http://hl7.org/fhir/sid/us-npi',
  ISO3166: 'urn:iso:std:iso:3166',
  ISO639: 'urn:ietf:bcp:47',
  NUCCPID: 'http://nucc.org/provider-taxonomy',
  UML: 'http://www.nlm.nih.gov/research/umls',
  NCIT: 'http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl',
};

/**
 * Everything a mapping needs besides the message: the sender, its time zone, how to turn
 * assigning authorities and coding-system names into URIs, ConceptMap translations, and the
 * warnings collected while mapping. Built from data ({@link MappingConfig}); no I/O.
 */
const OID = /^[0-2](\.(0|[1-9]\d*))+$/;
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class MappingContext {
  readonly header: MessageHeaderInfo;
  readonly timeZone: string | undefined;
  readonly warnings: MappingIssue[] = [];
  private readonly config: MappingConfig;

  constructor(header: MessageHeaderInfo, config: MappingConfig = EMPTY_MAPPING_CONFIG) {
    this.header = header;
    this.config = config;
    this.timeZone = senderTimeZone(config.senders, header.sendingFacility);
  }

  /** @returns A stable, URI-safe name of the sender: `<facility>/<application>`. */
  get senderPath(): string {
    return `${slug(this.header.sendingFacility || 'unknown-facility')}/${slug(this.header.sendingApplication || 'unknown-application')}`;
  }

  /**
   * The identifier system for an assigning authority (an HD): a NamingSystem that lists the
   * namespace id (type `other`), OID or URI wins; otherwise an ISO universal id becomes `urn:oid:`,
   * a URI stays, a bare namespace id becomes a hub-scoped system (with a warning), and no authority
   * at all gives a system scoped to the sender and the identifier type: a bare value is never
   * matched across senders.
   * @param authority - HD parts.
   * @param authority.namespace - HD-1.
   * @param authority.universalId - HD-2.
   * @param authority.universalIdType - HD-3.
   * @param identifierType - The identifier type code (CX-5), to scope sender-local ids.
   * @param location - Where the identifier was read, for warnings.
   * @returns The system URI.
   */
  identifierSystem(
    authority: { namespace: string; universalId: string; universalIdType: string },
    identifierType: string,
    location?: ErrorLocation
  ): string {
    const { namespace, universalId, universalIdType } = authority;
    const known = this.config.namingSystems.find((ns) =>
      (ns.uniqueId ?? []).some(
        (u) =>
          (namespace && u.type === 'other' && u.value === namespace) ||
          (universalId && (u.type === 'oid' || u.type === 'uri' || u.type === 'uuid') && u.value === universalId)
      )
    );
    const preferred = known?.uniqueId?.find((u) => u.type === 'uri' && u.preferred) ?? known?.uniqueId?.find((u) => u.type === 'uri');
    if (preferred?.value) {
      return preferred.value;
    }
    const type = universalIdType.trim().toUpperCase();
    const id = universalId.trim();
    if (id && type === 'ISO' && OID.test(id)) {
      return 'urn:oid:' + id;
    }
    if (id && (type === 'URI' || type === 'URL') && ABSOLUTE_URI.test(id)) {
      return id;
    }
    if (id && type === 'UUID' && UUID.test(id)) {
      return 'urn:uuid:' + id.toLowerCase();
    }
    if (id && ['ISO', 'URI', 'URL', 'UUID'].includes(type)) {
      this.warn({ code: Hl7ErrorCode.DataType, text: `Assigning authority universal id is not a valid ${type}; not used`, location });
    }
    if (namespace) {
      this.warn({
        code: Hl7ErrorCode.DataType,
        text: `No NamingSystem for assigning authority ${namespace}; using a hub-scoped system`,
        location,
      });
      return `${HUB_SID}/assigning-authority/${slug(namespace)}`;
    }
    return `${HUB_SID}/hl7/${this.senderPath}/${slug(identifierType || 'id')}`;
  }

  /**
   * @param name - A table 0396 coding-system name as sent (CWE-3), possibly empty.
   * @returns The FHIR code system URI: a standard one, `v2-nnnn` for HL7 tables, or the sender's
   * local system for local and unknown names.
   */
  codeSystem(name: string): string {
    const upper = name.trim().toUpperCase();
    const standard = TABLE_0396[upper];
    if (standard) {
      return standard;
    }
    const hl7Table = /^HL7(\d{4})$/.exec(upper);
    if (hl7Table) {
      return `http://terminology.hl7.org/CodeSystem/v2-${hl7Table[1]}`;
    }
    if (/^(https?|urn):/i.test(name)) {
      return name.trim();
    }
    return this.localSystem(name.trim() || 'L');
  }

  /**
   * @param table - The sender's table or coding-system name.
   * @returns The sender-scoped code system for its local codes.
   */
  localSystem(table: string): string {
    return `${HUB_SID}/local/${this.senderPath}/${slug(table)}`;
  }

  /**
   * Looks a code up in the configured ConceptMaps.
   * @param system - Source code system.
   * @param code - Source code.
   * @returns Target codings (equivalent or wider), possibly none.
   */
  translate(system: string, code: string): Coding[] {
    const result: Coding[] = [];
    for (const map of this.config.conceptMaps) {
      for (const group of map.group ?? []) {
        if (group.source !== system) {
          continue;
        }
        for (const element of group.element ?? []) {
          if (element.code !== code) {
            continue;
          }
          for (const target of element.target ?? []) {
            if (target.code && target.equivalence !== 'unmatched' && target.equivalence !== 'disjoint') {
              result.push({ system: group.target, code: target.code, display: target.display });
            }
          }
        }
      }
    }
    return result;
  }

  /** @param issue - A warning to report in the ACK and the ledger. */
  warn(issue: Omit<MappingIssue, 'severity'>): void {
    // A field read twice (a map and the pipeline both read EVN-2) is reported once.
    const same = (w: MappingIssue): boolean => w.code === issue.code && w.text === issue.text && deepEquals(w.location, issue.location);
    if (!this.warnings.some(same)) {
      this.warnings.push({ ...issue, severity: 'warning' });
    }
  }

  /**
   * @param value - An HL7 DTM.
   * @param location - Where it was read.
   * @returns A FHIR dateTime (or date), or undefined with a warning when invalid.
   */
  dateTime(value: string, location: ErrorLocation): string | undefined {
    return this.optional(value ? dtmToFhirDateTime(value, this.timeZone) : undefined, location);
  }

  /**
   * @param value - An HL7 DTM.
   * @param location - Where it was read.
   * @returns A FHIR instant, or undefined with a warning when invalid or without time.
   */
  instant(value: string, location: ErrorLocation): string | undefined {
    return this.optional(value ? dtmToFhirInstant(value, this.timeZone) : undefined, location);
  }

  /**
   * @param value - An HL7 DT (or DTM; the date part is used).
   * @param location - Where it was read.
   * @returns A FHIR date, or undefined with a warning when invalid.
   */
  date(value: string, location: ErrorLocation): string | undefined {
    return this.optional(value ? dtToFhirDate(value) : undefined, location);
  }

  /**
   * @param value - An HL7 TM.
   * @param location - Where it was read.
   * @returns A FHIR time, or undefined with a warning when invalid.
   */
  time(value: string, location: ErrorLocation): string | undefined {
    return this.optional(value ? tmToFhirTime(value) : undefined, location);
  }

  /**
   * Like {@link dateTime} but the value is required: a missing or invalid one is a data error.
   * @param value - An HL7 DTM.
   * @param location - Where it was read.
   * @param what - What the value is, for the error text.
   * @returns The FHIR dateTime.
   */
  requiredDateTime(value: string, location: ErrorLocation, what: string): string {
    if (!value) {
      throw new MappingError({ code: Hl7ErrorCode.RequiredFieldMissing, text: `${what} is missing`, location });
    }
    const result = dtmToFhirDateTime(value, this.timeZone);
    if ('error' in result) {
      throw new MappingError({ code: Hl7ErrorCode.DataType, text: `${what}: ${result.error}`, location });
    }
    return result.value;
  }

  private optional(result: DateTimeResult | undefined, location: ErrorLocation): string | undefined {
    if (!result) {
      return undefined;
    }
    if ('error' in result) {
      this.warn({ code: Hl7ErrorCode.DataType, text: 'value is ' + result.error, location });
      return undefined;
    }
    return result.value;
  }
}

function senderTimeZone(senders: readonly Organization[], facility: string): string | undefined {
  const zoneOf = (value: string): string | undefined =>
    senders
      .find((o) => o.identifier?.some((i) => i.system === HL7_SENDER_SYSTEM && i.value === value))
      ?.extension?.find((e) => e.url === SENDER_TIMEZONE_EXTENSION)?.valueString;
  return (facility ? zoneOf(facility) : undefined) ?? zoneOf('*');
}

/**
 * @param text - Any text.
 * @returns A URI path segment: letters, digits, `.`, `_` and `-` kept, everything else `-`.
 */
export function slug(text: string): string {
  return text.trim().replace(/[^A-Za-z0-9._-]+/g, '-') || '-';
}
