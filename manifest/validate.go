package manifest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/go-playground/validator/v10"
)

// stringRules maps a custom validator tag to the check that explains it.
var stringRules = map[string]func(string) string{
	"extendedresource": checkExtendedResourceName,
	"deviceid":         checkDeviceID,
	"envname":          checkEnvName,
	"annotationkey":    checkAnnotationKey,
	"permissions":      checkPermissions,
	"glob":             checkGlob,
	"usbid":            checkUSBID,
}

const (
	minHealthInterval = 100 * time.Millisecond
	maxHealthInterval = time.Hour
)

// fieldValidator is built once, as it caches struct metadata.
var fieldValidator = sync.OnceValues(func() (*validator.Validate, error) {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(jsonName) // YAML names in error paths, not Go names
	for tag, check := range stringRules {
		if err := v.RegisterValidation(tag, func(fl validator.FieldLevel) bool { return check(fl.Field().String()) == "" }); err != nil {
			return nil, fmt.Errorf("register validation %s: %w", tag, err)
		}
	}
	err := v.RegisterValidation("interval", func(fl validator.FieldLevel) bool {
		d, ok := fl.Field().Interface().(Duration)
		return ok && d.Duration >= minHealthInterval && d.Duration <= maxHealthInterval
	})
	if err != nil {
		return nil, fmt.Errorf("register validation interval: %w", err)
	}
	return v, nil
})

// validateFields applies the per-field rules (struct tags) and translates
// each failure into a FieldError at its YAML path.
func validateFields(spec *Spec, errs *ErrorList) {
	v, err := fieldValidator()
	if err != nil {
		errs.add("", "internal error: %v", err)
		return
	}
	err = v.Struct(spec)
	if err == nil {
		return
	}
	verrs, ok := errors.AsType[validator.ValidationErrors](err)
	if !ok {
		errs.add("", "validate: %v", err)
		return
	}
	for _, fe := range verrs {
		// The namespace starts with the Go type: "Spec.resources[0].name".
		errs.add(strings.TrimPrefix(fe.Namespace(), "Spec."), "%s", fieldMessage(fe))
	}
}

func fieldMessage(fe validator.FieldError) string {
	if check, ok := stringRules[fe.Tag()]; ok {
		if why := check(fmt.Sprint(fe.Value())); why != "" {
			return why
		}
	}
	switch fe.Tag() {
	case "required":
		switch fe.Field() {
		case "resources":
			return "is required: list at least one resource"
		case "apiVersion":
			return "is required; write apiVersion: " + APIVersion
		case "kind":
			return "is required; write kind: " + Kind
		}
		if fe.Kind() == reflect.String && strings.Contains(fe.Namespace(), "[") && strings.HasSuffix(fe.Namespace(), "]") {
			return "must not be empty"
		}
		return "is required"
	case "min":
		switch fe.Kind() {
		case reflect.Slice, reflect.Map:
			if fe.Field() == "resources" {
				return "is empty: list at least one resource"
			}
			if fe.Param() == "1" {
				return "must have at least 1 entry"
			}
			return fmt.Sprintf("must have at least %s entries", fe.Param())
		}
		return fmt.Sprintf("must be at least %s (got %v)", fe.Param(), fe.Value())
	case "max":
		return fmt.Sprintf("must be at most %s (got %v)", fe.Param(), fe.Value())
	case "oneof":
		return fmt.Sprintf("%q is not allowed; use one of %s", fe.Value(), strings.ReplaceAll(fe.Param(), " ", ", "))
	case "interval":
		return fmt.Sprintf("%v is out of range; use between %v and %v", fe.Value(), minHealthInterval, maxHealthInterval)
	}
	return fmt.Sprintf("fails rule %q", fe.Tag())
}
