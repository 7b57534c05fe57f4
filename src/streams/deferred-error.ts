/**
 * An error carried in an object stream after the values before it, instead of failing the
 * stream where it happened.
 *
 * A stage that fails destroys its whole pipeline at once, and everything the stages after it
 * still hold goes with it: the frames parsed in the same read as a malformed one, the pieces
 * being hashed and written, their events on the way to the journal. So a stage whose input
 * goes bad after good values (the piece stream decoders) pushes the good values, then a
 * DeferredError as its last object, and ends. Each stage after it finishes what came before,
 * then passes it on; the last stage (the command's sink) raises `error` once everything before
 * it is out, which fails the pipeline as any error does.
 */
export class DeferredError {
  readonly error: Error;
  constructor(error: Error) {
    this.error = error;
  }
}
