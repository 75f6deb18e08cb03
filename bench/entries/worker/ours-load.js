// autumn-track imported (wasm compiled and instantiated at module load) but not used: splits
// ours' cold start into module load and the first track().
import { AutumnTracker } from "autumn-track";

export default {
  fetch() {
    return new Response(typeof AutumnTracker);
  },
};
