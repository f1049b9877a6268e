import type { WithId } from '@medplum/core';
import { allOk, badRequest, ContentType, Hl7Message, OperationOutcomeError, Operator } from '@medplum/core';
import type { Binary, Bot, OperationOutcome, Project } from '@medplum/fhirtypes';
import type { AuthService, AuthState } from '../auth.ts';
import type { BinaryStorage } from '../binary-storage.ts';
import { mediaTypeOf } from '../http.ts';
import type { HubRepository } from '../repo.ts';
import type { BotExecutor } from './executor.ts';

/** Body of `POST Bot/:id/$deploy`. */
export interface DeployBotBody {
  readonly code?: string;
  readonly filename?: string;
}

/**
 * `Bot/:id/$deploy` as on the stock server for vmcontext bots: the caller must be able to read the
 * Bot and its project must have the `bots` feature; with `code`, a new `text/javascript` Binary
 * is stored and the Bot's `executableCode` points at it (a new Bot version). Nothing checks that
 * the code is valid; errors surface at `$execute`.
 * @param repo - The caller's repository (read access check, and the Bot update's author).
 * @param systemRepo - The system repository.
 * @param binaries - Binary content storage.
 * @param project - The caller's project.
 * @param botId - The Bot id.
 * @param body - `{ code?, filename? }`.
 * @returns The outcome.
 */
export async function deployBot(
  repo: HubRepository,
  systemRepo: HubRepository,
  binaries: BinaryStorage,
  project: WithId<Project>,
  botId: string,
  body: DeployBotBody | undefined
): Promise<OperationOutcome> {
  const bot = await repo.readResource<Bot>('Bot', botId);
  if (!project.features?.includes('bots')) {
    throw new OperationOutcomeError(badRequest('Bots not enabled'));
  }
  if (body?.code === undefined) {
    // Redeploying existing executable code is a no-op for vmcontext bots.
    return allOk;
  }
  if (typeof body.code !== 'string') {
    throw new OperationOutcomeError(badRequest('code must be a string'));
  }
  const filename = body.filename ?? 'index.js';
  const binary = await systemRepo.createResource<Binary>({ resourceType: 'Binary', contentType: ContentType.JAVASCRIPT });
  binaries.write(binary.id, binary.meta?.versionId as string, {
    contentType: ContentType.JAVASCRIPT,
    data: Buffer.from(body.code, 'utf8'),
  });
  await repo.updateResource<Bot>({
    ...bot,
    executableCode: { contentType: ContentType.JAVASCRIPT, url: 'Binary/' + binary.id, title: filename },
  });
  return allOk;
}

/** An incoming `Bot/$execute` call, already authenticated and parsed. */
export interface ExecuteRequest {
  readonly auth: AuthState;
  readonly method: 'GET' | 'POST';
  readonly botId?: string;
  readonly query: Record<string, string | string[]>;
  /** The parsed body (POST). */
  readonly body: unknown;
  /** The raw Content-Type header, parameters included: the bot sees it as is. */
  readonly contentType: string | undefined;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly traceId: string;
}

/** The HTTP answer of `$execute`. */
export interface ExecuteResponse {
  readonly status: number;
  readonly contentType: string;
  /** A string is sent as is; anything else is sent as JSON. */
  readonly body: unknown;
}

/** Dependencies of {@link executeBotOperation}. */
export interface ExecuteOperationDeps {
  readonly repo: HubRepository;
  readonly systemRepo: HubRepository;
  readonly executor: BotExecutor;
  readonly auth: AuthService;
}

/**
 * `Bot/:id/$execute` and `Bot/$execute?identifier=...` with the stock server's semantics: the bot
 * is read as the caller (access check) and run as its own membership (or the caller's with
 * `runAsUser`, or when it has none); POST passes the parsed body, GET the query; an HL7 body is
 * parsed into an `Hl7Message` and must start with `MSH`; a bot returning nothing yields an
 * OperationOutcome; the response Content-Type mirrors only exact `text/plain` and HL7 requests.
 * @param deps - Repositories and the executor.
 * @param request - The call.
 * @returns The response.
 */
export async function executeBotOperation(deps: ExecuteOperationDeps, request: ExecuteRequest): Promise<ExecuteResponse> {
  const userBot = await findBot(deps.repo, request);
  if (!userBot) {
    return { status: 400, contentType: ContentType.FHIR_JSON, body: badRequest('Must specify bot ID or identifier.') };
  }
  const bot = await deps.systemRepo.readResource<Bot>('Bot', userBot.id);
  const runAs = bot.runAsUser
    ? request.auth.membership
    : ((await deps.auth.findMembership({ reference: 'Bot/' + bot.id })) ?? request.auth.membership);

  let input: unknown = request.method === 'POST' ? request.body : request.query;
  // The stock HL7 body parser matches the media type with `req.is`, so parameters such as
  // `; charset=utf-8` do not skip it, and its parse error becomes "Content could not be parsed".
  if (request.method === 'POST' && mediaTypeOf(request.contentType) === ContentType.HL7_V2) {
    const text = typeof input === 'string' ? input : '';
    if (!text.startsWith('MSH')) {
      return { status: 400, contentType: ContentType.FHIR_JSON, body: badRequest('Content could not be parsed') };
    }
    input = Hl7Message.parse(text);
  }

  const result = await deps.executor.execute({
    bot,
    runAs,
    requester: request.auth.profile,
    input,
    contentType: request.contentType as string,
    traceId: request.traceId,
    headers: request.headers,
  });

  let body: unknown = result.returnValue;
  if (body === undefined) {
    body = result.success ? allOk : badRequest(result.logResult);
  } else if (typeof body === 'number') {
    body = body.toString();
  }
  const mirrored = request.contentType === ContentType.TEXT || request.contentType === ContentType.HL7_V2;
  return { status: result.success ? 200 : 400, contentType: mirrored ? (request.contentType as string) : ContentType.JSON, body };
}

async function findBot(repo: HubRepository, request: ExecuteRequest): Promise<WithId<Bot> | undefined> {
  if (request.botId) {
    return repo.readResource<Bot>('Bot', request.botId);
  }
  const identifier = request.query.identifier;
  if (typeof identifier === 'string' && identifier) {
    return repo.searchOne<Bot>({
      resourceType: 'Bot',
      filters: [{ code: 'identifier', operator: Operator.EQUALS, value: identifier }],
    });
  }
  return undefined;
}
