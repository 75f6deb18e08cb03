// The baselines the bench page runs, bundled by esbuild for the browser.
export { Autumn } from "autumn-js";
export { Queue } from "workbox-background-sync";
