/** CSS imported for its side effect; esbuild writes it beside the bundle. */
declare module "*.css";
