import type { WithId } from '@medplum/core';
import { createReference, isResource, normalizeErrorString, resolveId } from '@medplum/core';
import type {
  Agent,
  AuditEvent,
  AuditEventEntity,
  Binary,
  Bot,
  Device,
  Project,
  ProjectMembership,
  ProjectSetting,
  Reference,
  Resource,
  Subscription,
} from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import { hideValues, stripControlCharacters } from '../../fhir/strings.ts';
import { entityRole, recordAuditEvent } from '../audit.ts';
import type { AuthService } from '../auth.ts';
import type { BinaryStorage } from '../binary-storage.ts';
import type { HubRepository } from '../repo.ts';
import type { SandboxResult } from './sandbox.ts';
import { DEFAULT_BOT_TIMEOUT_MS, runBotInSandbox } from './sandbox.ts';

type AuditEventWho = NonNullable<AuditEvent['agent'][number]['who']>;
type AuditEventObserver = AuditEvent['source']['observer'];

/** The stock `maxBotLogLengthForResource` default: AuditEvent.outcomeDesc keeps the last 10 KiB. */
export const MAX_BOT_LOG_LENGTH = 10 * 1024;

/** One bot run: who runs it, as whom, on what (the server's `BotExecutionRequest`). */
export interface BotExecutionRequest {
  readonly bot: WithId<Bot>;
  /** The membership whose identity and token the bot gets. */
  readonly runAs: WithId<ProjectMembership>;
  readonly requester?: Reference;
  readonly input: unknown;
  readonly contentType: string;
  readonly subscription?: WithId<Subscription>;
  readonly agent?: WithId<Agent>;
  readonly device?: WithId<Device>;
  readonly traceId?: string;
  readonly headers?: Record<string, string | string[] | undefined>;
  /** When the triggering request arrived; the AuditEvent period starts here. */
  readonly requestTime?: string;
}

/** Dependencies of the executor, provided by the runtime. */
export interface BotExecutorOptions {
  readonly systemRepo: HubRepository;
  readonly binaries: BinaryStorage;
  readonly auth: AuthService;
  /** The URL bots call back to, ending with a slash (`vmContextBaseUrl ?? baseUrl` on the server). */
  readonly baseUrl: string;
}

/**
 * Runs bots the way the stock server's `executeBot` does for the `vmcontext` runtime: checks the
 * project's `bots` feature, mints a short-lived token for the run-as membership, collects the
 * project secrets, runs the deployed Binary in the sandbox and writes one AuditEvent per run
 * (honouring `auditEventTrigger` and `auditEventDestination`).
 */
export class BotExecutor {
  private readonly options: BotExecutorOptions;

  constructor(options: BotExecutorOptions) {
    this.options = options;
  }

  /**
   * Executes a bot. Never throws for bot failures: they come back as `success: false`.
   * @param request - The run.
   * @returns The outcome.
   */
  async execute(original: BotExecutionRequest): Promise<SandboxResult> {
    // Every run has a trace id, as on the stock server: one started by cron or by the agent gets
    // a new one, which its FHIR calls and its AuditEvent carry.
    const request = original.traceId ? original : { ...original, traceId: randomUUID() };
    const startTime = request.requestTime ?? new Date().toISOString();
    let result: SandboxResult;
    try {
      result = await this.run(request);
    } catch (err) {
      result = { success: false, logResult: normalizeErrorString(err) };
    }
    await this.writeAuditEvent(request, startTime, result);
    return result;
  }

  private async run(request: BotExecutionRequest): Promise<SandboxResult> {
    const { bot, runAs } = request;
    const { systemRepo } = this.options;
    const project = await systemRepo.readReference<Project>(runAs.project as Reference<Project>);
    if (!project.features?.includes('bots')) {
      return { success: false, logResult: 'Bots not enabled' };
    }
    if (bot.runtimeVersion !== 'vmcontext') {
      return {
        success: false,
        logResult: `Unsupported bot runtime: ${bot.runtimeVersion ?? '(none)'} (the local runtime runs vmcontext bots)`,
      };
    }
    const codeUrl = bot.executableCode?.url;
    if (!codeUrl) {
      return { success: false, logResult: 'No executable code' };
    }
    if (!codeUrl.startsWith('Binary/')) {
      return { success: false, logResult: 'Executable code is not a Binary' };
    }
    const binary = await systemRepo.readReference<Binary>({ reference: codeUrl });
    const content = this.options.binaries.read(binary.id, binary.meta?.versionId as string);
    if (!content) {
      return { success: false, logResult: 'Executable code Binary has no content' };
    }
    const accessToken = await this.options.auth.mintToken(runAs, 'execute');
    return runBotInSandbox(
      content.data.toString('utf8'),
      {
        bot: createReference(bot),
        baseUrl: this.options.baseUrl,
        accessToken,
        requester: request.requester,
        input: request.input,
        contentType: request.contentType,
        secrets: collectSecrets(bot, project),
        traceId: request.traceId,
        headers: request.headers,
      },
      bot.timeout ? bot.timeout * 1000 : DEFAULT_BOT_TIMEOUT_MS
    );
  }

  private async writeAuditEvent(request: BotExecutionRequest, startTime: string, result: SandboxResult): Promise<void> {
    const { bot, runAs } = request;
    const outcome: AuditEvent['outcome'] = result.success ? '0' : '4';
    const trigger = bot.auditEventTrigger ?? 'always';
    if (
      trigger === 'never' ||
      (trigger === 'on-error' && result.success) ||
      (trigger === 'on-output' && result.logResult.length === 0)
    ) {
      return;
    }
    const destinations = bot.auditEventDestination ?? ['resource'];
    if (!destinations.includes('resource')) {
      // 'log' prints only when the server's logAuditEvents is on; the local runtime keeps PHI out of
      // process logs, so a log-only destination records nothing here either.
      return;
    }
    const auditEvent: AuditEvent = {
      resourceType: 'AuditEvent',
      // Like the stock server, the event belongs to the project the bot ran in (the run-as project).
      meta: { project: resolveId(runAs.project), account: bot.meta?.account },
      period: { start: startTime, end: new Date().toISOString() },
      recorded: new Date().toISOString(),
      type: { system: 'https://medplum.com/CodeSystem/audit-event', code: 'execute' },
      agent: [
        { who: request.requester as AuditEventWho, requestor: true },
        { who: runAs.profile as AuditEventWho, requestor: false },
      ],
      source: { observer: createReference(bot) as AuditEventObserver },
      entity: auditEntities(bot, request.input, request.subscription, request.agent, request.device),
      outcome,
      // A FHIR string may not hold control characters; one in a log line must not lose the run's record.
      outcomeDesc: stripControlCharacters(result.logResult.slice(-MAX_BOT_LOG_LENGTH)),
    };
    // Auditing must never change a run's outcome: the caller's answer, an ACK, depends on it.
    await recordAuditEvent(this.options.systemRepo, auditEvent, request.traceId).catch((err: unknown) => {
      // The server's error may quote a value of the event, whose outcomeDesc is the bot's log.
      console.error(`AuditEvent for Bot/${bot.id} not written: ${hideValues(normalizeErrorString(err))}`);
    });
  }
}

/**
 * Collects `event.secrets` as the stock server does for a bot whose run-as membership is in its
 * own project: system secrets (only for `Bot.system`) first, then project secrets, later names
 * overriding earlier ones.
 * @param bot - The bot.
 * @param project - Its project.
 * @returns Secrets by name.
 */
export function collectSecrets(bot: Bot, project: Project): Record<string, ProjectSetting> {
  const secrets: Record<string, ProjectSetting> = {};
  const sources = [...(bot.system ? (project.systemSecret ?? []) : []), ...(project.secret ?? [])];
  for (const secret of sources) {
    secrets[secret.name] = secret;
  }
  return secrets;
}

function auditEntities(...values: unknown[]): AuditEventEntity[] {
  const entities: AuditEventEntity[] = [];
  for (const value of values) {
    if (isResource(value) && (value as Resource).id) {
      const resource = value as WithId<Resource>;
      entities.push({ what: createReference(resource), role: entityRole(resource) });
    }
  }
  return entities;
}
