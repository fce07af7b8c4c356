// A small typed client over `fetch` for the classifier's HTTP API. Types come from
// openapi.yaml (src/schema.ts is generated from it: `npm run generate`), so a change to
// the API's shape is a compile error here, not a surprise at run time.
//
// Images may be a Blob or File (browser), bytes (Uint8Array, Node's Buffer), a file path
// (Node only), or base64 text (React Native's image pickers hand out base64).

import type { components } from "./schema.js";

type Schemas = components["schemas"];
export type ImageResult = Schemas["ImageResult"];
export type Prediction = Schemas["Prediction"];
export type ClassifyResult = Schemas["SingleResponse"];
export type BatchResult = Schemas["BatchResponse"];
export type Health = Schemas["Health"];
export type ModelInfo = Schemas["ModelInfo"];
export type FeedbackResult = Schemas["FeedbackResponse"];
/** Every refusal the API answers with (`error.code`). */
export type ErrorCode = Schemas["Error"]["error"]["code"];

/** A `{"base64": "..."}` wrapper tells base64 text apart from a file path. */
export type Base64Image = { base64: string };
export type ImageInput = Blob | Uint8Array | ArrayBuffer | string | Base64Image;

export interface ClientOptions {
  /** The API's base URL: `make run`'s `http://127.0.0.1:9000/lambda-url/classify`, or the stack's ApiUrl. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>` when set. */
  token?: string;
  /** Per attempt, in milliseconds (default 15,000). */
  timeoutMs?: number;
  /** Retries after 429 and 503 answers and network errors (default 3). */
  retries?: number;
  /** First backoff in milliseconds, doubled per retry with jitter (default 250). */
  backoffMs?: number;
  /** A fetch to use instead of the global one (tests, polyfills). */
  fetch?: typeof fetch;
}

export interface ClassifyOptions {
  /** Classes to return, 1-10 (the API's default is 5). */
  topK?: number;
  /** Below this top-1 probability the answer is `label: null, matched: false`. */
  minProbability?: number;
  /** Add each image's saliency map (`saliency`: where the model looked); at most 8 images. */
  explain?: boolean;
  signal?: AbortSignal;
}

/** A refusal from the API (4xx/5xx with its JSON error body), or a failure to reach it. */
export class ClassifyError extends Error {
  constructor(
    /** HTTP status; 0 when no answer came (network error, timeout). */
    readonly status: number,
    /** The API's error code; `throttled` for API Gateway's 429, `unavailable` for other non-JSON answers. */
    readonly code: ErrorCode | "throttled" | "unavailable" | "network",
    message: string,
    /** The request's id (`x-request-id`), to quote when reporting a problem. */
    readonly requestId?: string,
  ) {
    super(`${code}: ${message}`);
    this.name = "ClassifyError";
  }

  /** Whether sending the same request again may succeed. */
  get retryable(): boolean {
    return this.status === 429 || this.status === 503 || this.status === 0;
  }
}

const BASE64 = /^(data:[^;,]+;base64,)?[A-Za-z0-9+/_-]+={0,2}$/;

export class Client {
  private readonly base: string;
  private readonly opts: Required<Omit<ClientOptions, "baseUrl" | "token" | "fetch">> & Pick<ClientOptions, "token">;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ClientOptions) {
    this.base = options.baseUrl.replace(/\/+$/, "");
    this.opts = {
      token: options.token,
      timeoutMs: options.timeoutMs ?? 15_000,
      retries: options.retries ?? 3,
      backoffMs: options.backoffMs ?? 250,
    };
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** One image: the top classes with calibrated probabilities. */
  async classify(image: ImageInput, options: ClassifyOptions = {}): Promise<ClassifyResult> {
    if (isBase64(image)) {
      return this.postJson<ClassifyResult>({ image: image.base64, ...jsonOptions(options) }, options.signal);
    }
    const body = await toBody(image);
    const query = new URLSearchParams();
    if (options.topK !== undefined) query.set("top_k", String(options.topK));
    if (options.minProbability !== undefined) query.set("min_probability", String(options.minProbability));
    if (options.explain) query.set("explain", "true");
    const qs = query.size > 0 ? `?${query}` : "";
    return this.request<ClassifyResult>(`/predict${qs}`, {
      method: "POST",
      headers: { "Content-Type": body.type },
      body: body.bytes,
      signal: options.signal,
    });
  }

  /** Several images in one request (at most 64, under 4.5 MB in all), answers in order. */
  async classifyBatch(images: ImageInput[], options: ClassifyOptions = {}): Promise<BatchResult> {
    const encoded = await Promise.all(images.map(toBase64));
    return this.postJson<BatchResult>({ images: encoded, ...jsonOptions(options) }, options.signal);
  }

  /**
   * Correct an answer: the label it should have had, for the answer's request (its
   * `x-request-id`, or `ClassifyError.requestId`) or for the image itself. Deployments
   * without feedback answer 404 `not_found`.
   */
  async feedback(label: string, of: { requestId: string } | { image: ImageInput }, signal?: AbortSignal): Promise<FeedbackResult> {
    const payload = "requestId" in of ? { label, request_id: of.requestId } : { label, image: await toBase64(of.image) };
    return this.request<FeedbackResult>("/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
      signal,
    });
  }

  /** The serving model's version and how it follows published models. */
  health(signal?: AbortSignal): Promise<Health> {
    return this.request<Health>("/health", { method: "GET", signal });
  }

  /** Labels, version, validation accuracy, calibration, input size and limits. */
  model(signal?: AbortSignal): Promise<ModelInfo> {
    return this.request<ModelInfo>("/model", { method: "GET", signal });
  }

  private postJson<T>(payload: object, signal?: AbortSignal): Promise<T> {
    return this.request<T>("/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
      signal,
    });
  }

  private async request<T>(path: string, init: Request): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json", ...init.headers };
    if (this.opts.token) headers.Authorization = `Bearer ${this.opts.token}`;
    for (let attempt = 0; ; attempt++) {
      const timeout = AbortSignal.timeout(this.opts.timeoutMs);
      const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
      let error: ClassifyError;
      try {
        const res = await this.fetchImpl(`${this.base}${path}`, { ...init, headers, signal });
        if (res.ok) return (await res.json()) as T;
        error = await refusal(res);
      } catch (e) {
        if (init.signal?.aborted) throw e;
        const timedOut = timeout.aborted;
        error = new ClassifyError(0, "network", timedOut ? `no answer within ${this.opts.timeoutMs} ms` : String(e));
      }
      if (!error.retryable || attempt >= this.opts.retries) throw error;
      const wait = this.opts.backoffMs * 2 ** attempt * (0.5 + Math.random());
      await new Promise((done) => setTimeout(done, wait));
    }
  }
}

/** What one call sends. */
interface Request {
  method: "GET" | "POST";
  headers?: Record<string, string>;
  body?: BodyInit;
  signal?: AbortSignal;
}

function isBase64(image: ImageInput): image is Base64Image {
  return typeof image === "object" && image !== null && "base64" in image;
}

function jsonOptions(options: ClassifyOptions): Record<string, number | boolean> {
  const out: Record<string, number | boolean> = {};
  if (options.topK !== undefined) out.top_k = options.topK;
  if (options.minProbability !== undefined) out.min_probability = options.minProbability;
  if (options.explain) out.explain = true;
  return out;
}

async function refusal(res: Response): Promise<ClassifyError> {
  const text = await res.text();
  const requestId = res.headers.get("x-request-id") ?? undefined;
  try {
    const body = JSON.parse(text);
    if (body?.error?.code) {
      return new ClassifyError(res.status, body.error.code, body.error.message ?? "", body.error.request_id ?? requestId);
    }
  } catch {
    // Not the API's JSON: the gateway's own answer.
  }
  const code = res.status === 429 ? "throttled" : "unavailable";
  return new ClassifyError(res.status, code, text.slice(0, 200) || res.statusText, requestId);
}

/** Raw bytes and the content type to send them with. */
async function toBody(image: Exclude<ImageInput, Base64Image>): Promise<{ bytes: Uint8Array<ArrayBuffer> | Blob; type: string }> {
  if (typeof Blob !== "undefined" && image instanceof Blob) {
    return { bytes: image, type: image.type || "application/octet-stream" };
  }
  if (image instanceof ArrayBuffer) return { bytes: new Uint8Array(image), type: "application/octet-stream" };
  if (image instanceof Uint8Array) return { bytes: new Uint8Array(image), type: "application/octet-stream" };
  if (typeof image === "string") {
    if (!("process" in globalThis)) throw new TypeError("a file path needs Node; pass a Blob, bytes or { base64 }");
    const { readFile } = await import("node:fs/promises");
    return { bytes: new Uint8Array(await readFile(image)), type: "application/octet-stream" };
  }
  throw new TypeError("an image is a Blob, a Uint8Array, an ArrayBuffer, a file path or { base64 }");
}

async function toBase64(image: ImageInput): Promise<string> {
  if (isBase64(image)) {
    if (!BASE64.test(image.base64)) throw new TypeError("{ base64 } holds text that is not base64");
    return image.base64;
  }
  const { bytes } = await toBody(image);
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(await bytes.arrayBuffer());
  let binary = "";
  for (let i = 0; i < data.length; i += 0x8000) {
    binary += String.fromCharCode(...data.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
