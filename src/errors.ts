/**
 * A failure a job ends with that says in the user's terms what went wrong (no peers left, no
 * metadata, pieces missing): the CLI prints its message as it is and exits 1. Anything else
 * thrown from the library is a bug, and the CLI says so.
 */
export class JobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
