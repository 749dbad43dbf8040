package model

import "strings"

// Message is one turn of a chat.
type Message struct {
	Role, Content string
}

// ChatStop is where an answer generated from ChatPrompt ends: the start of the next turn.
const ChatStop = "<|"

// ChatPrompt renders a chat in the template the project's models are trained on:
//
//	<|system|>
//	You are...
//	<|user|>
//	Hello
//	<|assistant|>
//
// ending with the assistant's turn open. Roles other than system, user and assistant are
// written as user turns.
func ChatPrompt(msgs []Message) string {
	var b strings.Builder
	for _, m := range msgs {
		role := m.Role
		switch role {
		case "system", "user", "assistant":
		default:
			role = "user"
		}
		b.WriteString("<|" + role + "|>\n")
		b.WriteString(m.Content)
		b.WriteString("\n")
	}
	b.WriteString("<|assistant|>\n")
	return b.String()
}
