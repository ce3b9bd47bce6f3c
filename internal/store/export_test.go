package store

// MigrationsFS exposes the embedded migrations to the external tests (migrate_test.go).
var MigrationsFS = migrations
