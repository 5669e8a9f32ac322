/**
 * The original flow, through a TypeScript client GENERATED from
 * openapi/openapi.yaml: openapi-typescript turns the spec into types
 * (schema.ts: `paths`, `operations`, `components`) and openapi-fetch is the
 * typed fetch client over them. Compiled with `tsc --strict`, run by Node.
 *
 * Usage: node out/flow.js BASE_URL
 *
 * .ci/e2e runs it from a temporary copy. By hand, from tests/e2e:
 *   npm ci
 *   npx openapi-typescript ../../openapi/openapi.yaml -o ts/schema.ts
 *   npx tsc --strict -p ts && node ts/out/flow.js http://127.0.0.1:8000
 *
 * Registers a user, logs in, then creates, lists, reads, updates and deletes
 * a patient and a doctor, assigns the doctor to the patient and unassigns it,
 * asserting on the typed values the client returns; every error is read as
 * the generated `Problem` type. Exits non-zero on the first mismatch.
 */

import { randomBytes } from "node:crypto";
import createClient from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

type Problem = components["schemas"]["Problem"];
type Patient = components["schemas"]["Patient"];
type Doctor = components["schemas"]["Doctor"];
type Mapping = components["schemas"]["Mapping"];
type User = components["schemas"]["User"];
type TokenPair = components["schemas"]["TokenPair"];

/*
 * openapi-fetch calls operations by method and path; the Python and Rust
 * clients name them by operationId. This pins every operation the flow calls
 * to its operationId, so a renamed or moved operation fails to compile here
 * too, not only in the other two languages.
 */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Pinned<T extends true> = T;
export type OperationIds = [
  Pinned<Same<paths["/api/auth/register"]["post"], operations["register"]>>,
  Pinned<Same<paths["/api/auth/login"]["post"], operations["login"]>>,
  Pinned<Same<paths["/api/auth/me"]["get"], operations["get_current_user"]>>,
  Pinned<Same<paths["/api/patients"]["post"], operations["create_patient"]>>,
  Pinned<Same<paths["/api/patients"]["get"], operations["list_patients"]>>,
  Pinned<Same<paths["/api/patients/{id}"]["get"], operations["get_patient"]>>,
  Pinned<Same<paths["/api/patients/{id}"]["put"], operations["update_patient"]>>,
  Pinned<Same<paths["/api/patients/{id}"]["patch"], operations["patch_patient"]>>,
  Pinned<Same<paths["/api/patients/{id}"]["delete"], operations["delete_patient"]>>,
  Pinned<Same<paths["/api/patients/{id}/doctors"]["get"], operations["list_patient_doctors"]>>,
  Pinned<Same<paths["/api/doctors"]["post"], operations["create_doctor"]>>,
  Pinned<Same<paths["/api/doctors"]["get"], operations["list_doctors"]>>,
  Pinned<Same<paths["/api/doctors/{id}"]["get"], operations["get_doctor"]>>,
  Pinned<Same<paths["/api/doctors/{id}"]["put"], operations["update_doctor"]>>,
  Pinned<Same<paths["/api/doctors/{id}"]["patch"], operations["patch_doctor"]>>,
  Pinned<Same<paths["/api/doctors/{id}"]["delete"], operations["delete_doctor"]>>,
  Pinned<Same<paths["/api/mappings"]["post"], operations["assign_doctor"]>>,
  Pinned<Same<paths["/api/mappings"]["get"], operations["list_mappings"]>>,
  Pinned<Same<paths["/api/mappings/{id}"]["get"], operations["list_patient_mappings"]>>,
  Pinned<Same<paths["/api/mappings/{id}"]["delete"], operations["unassign_doctor"]>>,
];

const PASSWORD = "Velvet-Otter-Quarry-42";

function check(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

/** The call succeeded with `status`; its typed body. */
function ok<T>(r: { data?: T; error?: unknown; response: Response }, status: number, what: string): T {
  check(
    r.response.status === status,
    `${what}: status ${r.response.status} instead of ${status}: ${JSON.stringify(r.error)}`,
  );
  check(r.data !== undefined, `${what}: no body`);
  return r.data;
}

/** The call succeeded with 204 No Content. */
function noContent(r: { error?: unknown; response: Response }, what: string): void {
  check(r.response.status === 204, `${what}: status ${r.response.status} instead of 204: ${JSON.stringify(r.error)}`);
}

/**
 * The call failed with `status` and an RFC 9457 problem: `error` is typed by
 * the spec's `application/problem+json` responses as the generated `Problem`
 * (this stops compiling if an error response loses that schema).
 */
function problem(r: { error?: Problem; response: Response }, status: number, what: string): Problem {
  check(r.response.status === status, `${what}: status ${r.response.status} instead of ${status}`);
  const contentType = r.response.headers.get("content-type") ?? "";
  check(contentType.startsWith("application/problem+json"), `${what}: Content-Type ${contentType}`);
  check(r.error !== undefined, `${what}: no problem body`);
  check(r.error.status === status, `${what}: problem.status ${r.error.status} in a ${status} response`);
  return r.error;
}

async function main(baseUrl: string): Promise<void> {
  const username = `e2e_ts_${randomBytes(4).toString("hex")}`;
  const anon = createClient<paths>({ baseUrl });

  // Register and log in.
  const user: User = ok(
    await anon.POST("/api/auth/register", {
      body: { username, email: `${username}@example.com`, password: PASSWORD },
    }),
    201,
    "register",
  );
  check(user.username === username && user.id > 0, `register: ${JSON.stringify(user)}`);
  check(user.is_staff === false, "register: a new user is not staff");

  const weak: Problem = problem(
    await anon.POST("/api/auth/register", {
      body: { username: `x${username}`, email: `x${username}@example.com`, password: "password123" },
    }),
    400,
    "register with password123",
  );
  check(weak.title === "Bad Request", `weak password: title ${weak.title}`);
  const passwordErrors: string[] | undefined = weak.errors?.["password"];
  check(passwordErrors !== undefined && passwordErrors.length > 0, `weak password: ${JSON.stringify(weak)}`);

  const tokens: TokenPair = ok(
    await anon.POST("/api/auth/login", { body: { username, password: PASSWORD } }),
    200,
    "login",
  );
  check(tokens.access.split(".").length === 3 && tokens.refresh.split(".").length === 3, "login: two JWTs");

  const bad = problem(
    await anon.POST("/api/auth/login", { body: { username, password: "Wrong-Password-99" } }),
    401,
    "login with a wrong password",
  );
  check(bad.title === "Unauthorized", `bad login: ${JSON.stringify(bad)}`);

  const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${tokens.access}` } });
  const me = ok(await api.GET("/api/auth/me"), 200, "me");
  check(me.id === user.id, "me is the registered user");

  // Patients.
  const created = await api.POST("/api/patients", { body: { name: "Ada Lovelace", age: 36, gender: "Female" } });
  const patient: Patient = ok(created, 201, "create patient");
  check(patient.name === "Ada Lovelace" && patient.age === 36, `create patient: ${JSON.stringify(patient)}`);
  check(patient.gender === "Female", "gender is the Gender union");
  check(patient.created_by === user.id, "the patient is owned by the caller");
  const location = created.response.headers.get("location") ?? "";
  check(location.replace(/\/$/, "").endsWith(`/api/patients/${patient.id}`), `Location ${location}`);

  const patients: Patient[] = ok(await api.GET("/api/patients"), 200, "list patients");
  check(patients.length === 1 && patients[0]?.id === patient.id, `list patients: ${JSON.stringify(patients)}`);

  const got = await api.GET("/api/patients/{id}", { params: { path: { id: patient.id } } });
  const fetched = ok(got, 200, "get patient");
  check(fetched.id === patient.id && fetched.name === patient.name, "get patient");
  const etag = got.response.headers.get("etag");
  check(etag !== null && etag !== "", "get patient: ETag");

  const updated = ok(
    await api.PUT("/api/patients/{id}", {
      params: { path: { id: patient.id }, header: { "If-Match": etag } },
      body: { name: "Ada King", age: 37, gender: "Female" },
    }),
    200,
    "update patient",
  );
  check(updated.name === "Ada King" && updated.age === 37, `update patient: ${JSON.stringify(updated)}`);
  check(Date.parse(updated.updated_at) >= Date.parse(updated.created_at), "update patient: timestamps");

  problem(
    await api.PUT("/api/patients/{id}", {
      params: { path: { id: patient.id }, header: { "If-Match": etag } },
      body: { name: "Lost Update", age: 1, gender: "Other" },
    }),
    412,
    "update patient with a stale ETag",
  );

  const patched = ok(
    await api.PATCH("/api/patients/{id}", { params: { path: { id: patient.id } }, body: { age: 38 } }),
    200,
    "patch patient",
  );
  check(patched.age === 38 && patched.name === "Ada King", `patch patient: ${JSON.stringify(patched)}`);

  // Doctors.
  const doctor: Doctor = ok(
    await api.POST("/api/doctors", { body: { name: "Dr. Gregory House", specialization: "Diagnostics" } }),
    201,
    "create doctor",
  );
  check(doctor.specialization === "Diagnostics" && doctor.created_by === user.id, `create doctor: ${JSON.stringify(doctor)}`);
  const doctors: Doctor[] = ok(await api.GET("/api/doctors"), 200, "list doctors");
  check(doctors.some((d) => d.id === doctor.id), "list doctors has the doctor");
  const fetchedDoctor = ok(
    await api.GET("/api/doctors/{id}", { params: { path: { id: doctor.id } } }),
    200,
    "get doctor",
  );
  check(fetchedDoctor.name === "Dr. Gregory House", "get doctor");
  const updatedDoctor = ok(
    await api.PUT("/api/doctors/{id}", {
      params: { path: { id: doctor.id } },
      body: { name: "Dr. James Wilson", specialization: "Oncology" },
    }),
    200,
    "update doctor",
  );
  check(updatedDoctor.name === "Dr. James Wilson", "update doctor");
  const patchedDoctor = ok(
    await api.PATCH("/api/doctors/{id}", { params: { path: { id: doctor.id } }, body: { specialization: "Neurology" } }),
    200,
    "patch doctor",
  );
  check(patchedDoctor.specialization === "Neurology" && patchedDoctor.name === "Dr. James Wilson", "patch doctor");

  // Map and unmap.
  const mapping: Mapping = ok(
    await api.POST("/api/mappings", { body: { patient: patient.id, doctor: doctor.id } }),
    201,
    "assign doctor",
  );
  check(mapping.patient === patient.id && mapping.doctor === doctor.id, `assign doctor: ${JSON.stringify(mapping)}`);
  check(mapping.doctor_detail.name === "Dr. James Wilson", "mapping carries doctor_detail");
  const duplicate = problem(
    await api.POST("/api/mappings", { body: { patient: patient.id, doctor: doctor.id } }),
    409,
    "assign the same doctor twice",
  );
  check(duplicate.title === "Conflict", `duplicate mapping: ${JSON.stringify(duplicate)}`);

  const all: Mapping[] = ok(await api.GET("/api/mappings"), 200, "list mappings");
  check(all.length === 1 && all[0]?.id === mapping.id, `list mappings: ${JSON.stringify(all)}`);
  const ofPatient = ok(
    await api.GET("/api/mappings/{id}", { params: { path: { id: patient.id } } }),
    200,
    "patient mappings",
  );
  check(ofPatient.length === 1 && ofPatient[0]?.id === mapping.id, "patient mappings");
  const assigned = ok(
    await api.GET("/api/patients/{id}/doctors", { params: { path: { id: patient.id } } }),
    200,
    "patient doctors",
  );
  check(assigned.length === 1 && assigned[0]?.id === doctor.id, "patient doctors");

  noContent(await api.DELETE("/api/mappings/{id}", { params: { path: { id: mapping.id } } }), "unassign");
  const empty = ok(
    await api.GET("/api/mappings/{id}", { params: { path: { id: patient.id } } }),
    200,
    "patient mappings after",
  );
  check(empty.length === 0, "no mappings after unassign");

  // Delete both, then they are gone.
  noContent(await api.DELETE("/api/doctors/{id}", { params: { path: { id: doctor.id } } }), "delete doctor");
  problem(await api.GET("/api/doctors/{id}", { params: { path: { id: doctor.id } } }), 404, "deleted doctor");
  noContent(await api.DELETE("/api/patients/{id}", { params: { path: { id: patient.id } } }), "delete patient");
  const gone = problem(
    await api.GET("/api/patients/{id}", { params: { path: { id: patient.id } } }),
    404,
    "deleted patient",
  );
  check(gone.title === "Not Found", `deleted patient: ${JSON.stringify(gone)}`);
  check(ok(await api.GET("/api/patients"), 200, "list after delete").length === 0, "empty after delete");

  console.log(`ts client flow OK (user ${username}, patient ${patient.id}, doctor ${doctor.id}, mapping ${mapping.id})`);
}

const baseUrl = process.argv[2];
if (process.argv.length !== 3 || baseUrl === undefined) {
  console.error("usage: node out/flow.js BASE_URL");
  process.exit(2);
}
main(baseUrl.replace(/\/$/, "")).catch((e: unknown) => {
  console.error(`ts client flow FAILED: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
