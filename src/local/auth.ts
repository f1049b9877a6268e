import type { ProfileResource, WithId } from '@medplum/core';
import { createReference, getReferenceString, Operator } from '@medplum/core';
import type { AccessPolicy, ClientApplication, Project, ProjectMembership, Reference } from '@medplum/fhirtypes';
import { jwtVerify, SignJWT } from 'jose';
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { applyProjectAdminRules, applySmartScopes, buildAccessPolicy } from './access.ts';
import type { HubRepository } from './repo.ts';

/** Access tokens live one hour, as on the stock server. */
export const ACCESS_TOKEN_LIFETIME_SECONDS = 3600;

/** The authenticated caller of a request: its membership, profile and project. */
export interface AuthState {
  readonly project: WithId<Project>;
  readonly membership: WithId<ProjectMembership>;
  /** The caller's profile: `ClientApplication/<id>`, `Bot/<id>`, ... */
  readonly profile: Reference<ProfileResource>;
  /** How the login was made: `client` (client credentials or Basic), `execute` (a bot run). */
  readonly authMethod: 'client' | 'execute';
  /** The SMART scopes the login asked for (`openid` when none). */
  readonly scope: string;
  /**
   * The effective AccessPolicy: the membership's policies with their parameters, narrowed by the
   * login's SMART scopes, with the project admin rules. Undefined for super admins.
   */
  readonly accessPolicy?: AccessPolicy;
}

/** The body of a successful `POST /oauth2/token`, in the stock server's shape. */
export interface TokenResponse {
  readonly token_type: 'Bearer';
  readonly access_token: string;
  readonly expires_in: number;
  readonly scope: string;
  readonly project: Reference<Project>;
  readonly profile: Reference<ProfileResource>;
}

/** An OAuth2 error, answered as `{ error, error_description }` with HTTP 400 or 401. */
export class OAuthError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, description: string, status = 400) {
    super(description);
    this.code = code;
    this.status = status;
  }
}

interface Login {
  readonly membershipId: string;
  readonly authMethod: AuthState['authMethod'];
  readonly scope: string;
  readonly expires: number;
}

/**
 * Authentication for the local runtime: OAuth2 client credentials, HTTP Basic with a client id and
 * secret (both accepted by the stock server), and short-lived bot execution logins.
 *
 * Tokens are JWTs with the claims `MedplumClient` reads (`login_id`, `client_id`, `profile`,
 * `exp`), signed with a key generated at start-up, and backed by an in-memory login table: like
 * everything else in the local runtime they do not survive a restart.
 */
export class AuthService {
  private readonly repo: HubRepository;
  private readonly issuer: string;
  private readonly key = randomBytes(32);
  private readonly logins = new Map<string, Login>();

  /**
   * @param systemRepo - A repository that can read every ClientApplication, membership and project.
   * @param issuer - The server base URL, used as the token issuer.
   */
  constructor(systemRepo: HubRepository, issuer: string) {
    this.repo = systemRepo;
    this.issuer = issuer;
  }

  /**
   * Handles `grant_type=client_credentials`.
   * @param clientId - The ClientApplication id.
   * @param clientSecret - The secret it presented.
   * @param scope - The requested scopes; SMART resource scopes narrow the client's AccessPolicy.
   * @returns The token response.
   */
  async clientCredentials(clientId: string | undefined, clientSecret: string | undefined, scope?: string): Promise<TokenResponse> {
    if (!clientId) {
      throw new OAuthError('invalid_request', 'Missing client_id');
    }
    if (!clientSecret) {
      throw new OAuthError('invalid_request', 'Missing client_secret');
    }
    const membership = await this.verifyClient(clientId, clientSecret);
    const grantedScope = scope?.trim() || 'openid';
    const accessToken = await this.mintToken(membership, 'client', grantedScope);
    return {
      token_type: 'Bearer',
      access_token: accessToken,
      expires_in: ACCESS_TOKEN_LIFETIME_SECONDS,
      scope: grantedScope,
      project: membership.project as Reference<Project>,
      profile: membership.profile as Reference<ProfileResource>,
    };
  }

  /**
   * Creates a login for a membership and returns its access token. Bot runs use this the way the
   * stock server's `getBotAccessToken` does.
   * @param membership - The membership to log in as.
   * @param authMethod - How the login was made.
   * @param scope - The login's scopes (bot logins have `openid` only, as on the stock server).
   * @returns A signed access token.
   */
  async mintToken(membership: WithId<ProjectMembership>, authMethod: AuthState['authMethod'], scope = 'openid'): Promise<string> {
    const loginId = randomUUID();
    const now = Math.floor(Date.now() / 1000);
    const expires = now + ACCESS_TOKEN_LIFETIME_SECONDS;
    this.logins.set(loginId, { membershipId: membership.id, authMethod, scope, expires });
    this.pruneLogins(now);
    const profile = membership.profile?.reference as string;
    const clientId = profile.startsWith('ClientApplication/') ? profile.split('/')[1] : undefined;
    return new SignJWT({
      login_id: loginId,
      username: membership.user?.reference?.split('/')[1],
      profile,
      scope,
      ...(clientId ? { client_id: clientId } : {}),
    })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(membership.user?.reference?.split('/')[1] ?? membership.id)
      .setIssuer(this.issuer)
      .setIssuedAt(now)
      .setExpirationTime(expires)
      .sign(this.key);
  }

  /**
   * Authenticates an `Authorization` header: `Bearer <token>` or `Basic base64(id:secret)`.
   * @param authorization - The header value.
   * @returns The caller, or undefined when the header is missing or invalid.
   */
  async authenticate(authorization: string | undefined): Promise<AuthState | undefined> {
    if (!authorization) {
      return undefined;
    }
    const [scheme, value] = authorization.split(' ', 2);
    if (!value) {
      return undefined;
    }
    try {
      if (scheme.toLowerCase() === 'bearer') {
        return await this.authenticateBearer(value);
      }
      if (scheme.toLowerCase() === 'basic') {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const separator = decoded.indexOf(':');
        if (separator < 0) {
          return undefined;
        }
        const membership = await this.verifyClient(decoded.slice(0, separator), decoded.slice(separator + 1));
        return await this.stateFor(membership, 'client');
      }
    } catch (_err) {
      return undefined;
    }
    return undefined;
  }

  /**
   * Builds the AuthState of a membership, with its effective AccessPolicy (read afresh, so that a
   * policy change applies to the next request, as on the stock server).
   * @param membership - The membership.
   * @param authMethod - How it logged in.
   * @param scope - The login's scopes.
   * @returns The caller.
   */
  async stateFor(membership: WithId<ProjectMembership>, authMethod: AuthState['authMethod'], scope = 'openid'): Promise<AuthState> {
    const project = await this.repo.readReference<Project>(membership.project as Reference<Project>);
    let accessPolicy: AccessPolicy | undefined;
    if (!project.superAdmin) {
      const built = await buildAccessPolicy(membership, (reference) => this.repo.readReference<AccessPolicy>(reference));
      accessPolicy = applyProjectAdminRules(applySmartScopes(built, scope), project, membership);
    }
    return { project, membership, profile: membership.profile as Reference<ProfileResource>, authMethod, scope, accessPolicy };
  }

  /**
   * Finds the membership whose profile is the given resource (a ClientApplication or Bot).
   * @param profile - The profile reference.
   * @returns The membership, if one exists.
   */
  async findMembership(profile: Reference): Promise<WithId<ProjectMembership> | undefined> {
    return this.repo.searchOne<ProjectMembership>({
      resourceType: 'ProjectMembership',
      filters: [{ code: 'profile', operator: Operator.EQUALS, value: profile.reference as string }],
    });
  }

  private async authenticateBearer(token: string): Promise<AuthState | undefined> {
    const { payload } = await jwtVerify(token, this.key, { issuer: this.issuer });
    const loginId = payload.login_id;
    if (typeof loginId !== 'string') {
      return undefined;
    }
    const login = this.logins.get(loginId);
    if (!login || login.expires * 1000 < Date.now()) {
      return undefined;
    }
    const membership = await this.repo.readResource<ProjectMembership>('ProjectMembership', login.membershipId);
    return this.stateFor(membership, login.authMethod, login.scope);
  }

  private async verifyClient(clientId: string, clientSecret: string): Promise<WithId<ProjectMembership>> {
    let client: WithId<ClientApplication>;
    try {
      client = await this.repo.readResource<ClientApplication>('ClientApplication', clientId);
    } catch (_err) {
      throw new OAuthError('invalid_request', 'Invalid client');
    }
    if (!client.secret || !secretsMatch(client.secret, clientSecret)) {
      throw new OAuthError('invalid_request', 'Invalid secret');
    }
    const membership = await this.findMembership(createReference(client));
    if (!membership) {
      throw new OAuthError('invalid_request', `No project membership for ${getReferenceString(client)}`);
    }
    return membership;
  }

  private pruneLogins(now: number): void {
    if (this.logins.size < 10_000) {
      return;
    }
    for (const [id, login] of this.logins) {
      if (login.expires < now) {
        this.logins.delete(id);
      }
    }
  }
}

/**
 * Compares two secrets in constant time (hashing first so that lengths never leak).
 * @param expected - The stored secret.
 * @param actual - The presented secret.
 * @returns True when they are equal.
 */
export function secretsMatch(expected: string, actual: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(actual).digest();
  return timingSafeEqual(a, b);
}
