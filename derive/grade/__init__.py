"""Grading a class: an assignment, the students' answers, a gradebook (derive grade)."""
