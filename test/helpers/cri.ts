/** The one CRI call the tests need (runtime.v1 ImageService.PullImage), as the kubelet makes it, over containerd's socket. */
import { credentials, loadPackageDefinition, type Client } from "@grpc/grpc-js";
import { fromJSON } from "@grpc/proto-loader";

// Field numbers from k8s.io/cri-api pkg/apis/runtime/v1/api.proto.
const DESCRIPTOR = {
  nested: {
    runtime: {
      nested: {
        v1: {
          nested: {
            ImageService: { methods: { PullImage: { requestType: "PullImageRequest", responseType: "PullImageResponse" } } },
            ImageSpec: { fields: { image: { type: "string", id: 1 }, annotations: { keyType: "string", type: "string", id: 2 } } },
            PullImageRequest: { fields: { image: { type: "ImageSpec", id: 1 } } },
            PullImageResponse: { fields: { image_ref: { type: "string", id: 1 } } },
          },
        },
      },
    },
  },
};

type Ns = { [k: string]: Ns } & { ImageService: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client };

export async function criPullImage(socket: string, image: string, timeoutMs = 180_000): Promise<string> {
  const def = fromJSON(DESCRIPTOR as unknown as Parameters<typeof fromJSON>[0], { keepCase: true, defaults: true });
  const root = loadPackageDefinition(def) as unknown as { runtime: { v1: Ns } };
  const client = new root.runtime.v1.ImageService(`unix://${socket}`, credentials.createInsecure());
  const call = (
    client as unknown as Record<string, (req: unknown, opts: { deadline: number }, cb: (err: Error | null, res: { image_ref: string }) => void) => void>
  ).PullImage!;
  try {
    return await new Promise<string>((resolve, reject) =>
      call.call(client, { image: { image } }, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res.image_ref))),
    );
  } finally {
    client.close();
  }
}
