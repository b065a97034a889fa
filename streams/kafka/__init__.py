"""The embedded Apache Kafka broker the project fetches from Maven Central and runs itself."""
