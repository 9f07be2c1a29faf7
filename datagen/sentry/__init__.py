"""The Sentry subset from the Hugging Face Hub: list split tar parts, fetch them one by one,
stream them through one tar reader, convert the members as they stream."""
