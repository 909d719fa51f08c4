// What the offload queue needs from whatever runs a job: an OpenAI-compatible server (openai.ts), the
// embedded llama.cpp (llama.ts), or a mesh peer that promised the job's kind (MESH.md "Capabilities").

/** One `llm.generate` job as a backend sees it: the gateway's context, then the meter's text. */
export interface GenerateRequest {
  /** Instructions and the device's recent data, written by the gateway (context.ts). */
  system: string;
  /** The meter's prompt, as the device sent it. */
  prompt: string;
  maxTokens: number;
  /** The device the job is for (a backend may log it; a peer may account it). */
  deviceId: string;
}

export interface OffloadBackend {
  /** For logs and errors: `openai http://127.0.0.1:8080`, `gguf /models/x.gguf`, `peer 12D3…`. */
  readonly name: string;
  /** Jobs it runs at once at most (the queue's concurrency is the smaller of this and its own). */
  readonly concurrency: number;
  /**
   * Streams the answer through `onText`, in order, as the model produces it; resolves when the model
   * is done, rejects with an Error whose message a technician can act on. Stops soon after `signal`
   * aborts (the queue then reports why).
   */
  generate(req: GenerateRequest, signal: AbortSignal, onText: (text: string) => void): Promise<void>;
  /** Frees what it holds (sockets, the model). */
  close(): Promise<void>;
}

/**
 * Routes a kind this gateway cannot run itself to a mesh peer that advertises it (MESH.md
 * "Capabilities"). The mesh (gateway/mesh/) provides it; undefined when no peer offers the kind.
 */
export type PeerRouter = (kind: string) => OffloadBackend | undefined;

/** A backend failure the device should see as it is (the message already names the thing and the fix). */
export class BackendError extends Error {}
